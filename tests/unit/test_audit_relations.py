"""Checks that relate objects: RBAC bindings and roles, PDBs, HPAs, NetworkPolicies, ServiceAccounts."""

from __future__ import annotations

import copy

from audit_helpers import failed, load, result

from pipeline.audit import audit_objects, score


def test_rbac_exec_roles_and_bindings():
    findings = audit_objects(load("rbac-exec.yaml"))
    assert failed(findings, "debugger") == {"rolePodExecAttach"}
    assert failed(findings, "reader") == set()
    assert failed(findings, "debugger-binding") == {"rolebindingRolePodExecAttach"}
    assert failed(findings, "reader-binding") == set()
    # a binding to a Role that is not there is reported, as Polaris does
    assert failed(findings, "ghost-binding") == {"rolebindingRolePodExecAttach"}
    assert failed(findings, "god-mode") == {"clusterrolePodExecAttach"}
    assert failed(findings, "ops-god-mode") == {"clusterrolebindingClusterAdmin", "clusterrolebindingPodExecAttach"}
    assert failed(findings, "ci-admin") == {"clusterrolebindingClusterAdmin", "clusterrolebindingPodExecAttach"}
    assert failed(findings, "team-admin") == {"rolebindingClusterAdminClusterRole", "rolebindingClusterRolePodExecAttach"}
    # bindings to a Role are not the concern of the ClusterRole checks, and vice versa
    assert result(findings, "rolebindingClusterRolePodExecAttach", "debugger-binding") is True
    assert result(findings, "rolebindingClusterAdminRole", "debugger-binding") is True
    # 13 passed, 10 dangers: 26 / (26 + 20) = 56.5 -> 56
    assert score(findings) == 56


def test_wildcard_role_in_rolebinding():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "all", "namespace": "a"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "b", "namespace": "a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "all"}}
    assert result(audit_objects([role, binding]), "rolebindingClusterAdminRole", "b") is False
    elsewhere = copy.deepcopy(role)
    elsewhere["metadata"]["namespace"] = "other"  # a Role of another namespace is not the one bound
    assert result(audit_objects([elsewhere, binding]), "rolebindingClusterAdminRole", "b") is True


def _hardened() -> list[dict]:
    return load("hardened-deployment.yaml")


def _kind(objects, kind):
    return next(o for o in objects if o["kind"] == kind)


def test_pdb_must_select_the_pods_in_the_same_namespace():
    objects = _hardened()
    assert result(audit_objects(objects), "missingPodDisruptionBudget", "api") is True
    without = [o for o in objects if o["kind"] != "PodDisruptionBudget"]
    assert result(audit_objects(without), "missingPodDisruptionBudget", "api") is False
    moved = copy.deepcopy(objects)
    _kind(moved, "PodDisruptionBudget")["metadata"]["namespace"] = "elsewhere"
    assert result(audit_objects(moved), "missingPodDisruptionBudget", "api") is False
    other = copy.deepcopy(objects)
    _kind(other, "PodDisruptionBudget")["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": "web"}}
    assert result(audit_objects(other), "missingPodDisruptionBudget", "api") is False
    expressions = copy.deepcopy(objects)
    _kind(expressions, "PodDisruptionBudget")["spec"]["selector"] = {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}
    assert result(audit_objects(expressions), "missingPodDisruptionBudget", "api") is True


def test_pdb_disruptions_zero():
    pdb = _kind(_hardened(), "PodDisruptionBudget")
    for spec, ok in [({"maxUnavailable": 0}, False), ({"maxUnavailable": "0%"}, False),
                     ({"minAvailable": "100%"}, False), ({"minAvailable": 1}, True), ({"maxUnavailable": "25%"}, True)]:
        pdb["spec"] = dict(spec, selector={})
        assert result(audit_objects([pdb]), "pdbDisruptionsIsZero", "api") is ok, spec
    pdb["status"] = {"disruptionsAllowed": 0}  # a live object: its status says no eviction is possible now
    assert result(audit_objects([pdb]), "pdbDisruptionsIsZero", "api") is False


def _hpa(min_replicas=None, max_replicas=4, target="api"):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}, "maxReplicas": max_replicas}
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hpa", "namespace": "shop"}, "spec": spec}


def test_hpa_availability():
    findings = audit_objects([_hpa(1, 1)])
    assert failed(findings) == {"hpaMinAvailability", "hpaMaxAvailability"}
    assert failed(audit_objects([_hpa(2, 5)])) == set()
    assert failed(audit_objects([_hpa(None, 3)])) == set()  # minReplicas unset: nothing to compare


def test_pdb_min_available_against_hpa_min_replicas():
    objects = _hardened()
    pdb = _kind(objects, "PodDisruptionBudget")
    pdb["spec"] = {"minAvailable": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}
    check = "pdbMinAvailableGreaterThanOrEqualToHPAMinReplicas"
    assert result(audit_objects(objects + [_hpa(2, 5)]), check, "api") is False
    assert result(audit_objects(objects + [_hpa(3, 5)]), check, "api") is True
    pdb["spec"]["minAvailable"] = "50%"  # of 4 = 2
    assert result(audit_objects(objects + [_hpa(4, 6)]), check, "api") is True
    assert result(audit_objects(objects + [_hpa(2, 6, target="web")]), check, "api") is True  # not this one's HPA


def test_network_policy_must_cover_ingress_and_egress():
    objects = _hardened()
    policy = _kind(objects, "NetworkPolicy")
    assert result(audit_objects(objects), "missingNetworkPolicy", "api") is True
    policy["spec"] = {"podSelector": {}, "ingress": []}  # default policyTypes: Ingress only
    assert result(audit_objects(objects), "missingNetworkPolicy", "api") is False
    egress = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "out", "namespace": "shop"},
              "spec": {"podSelector": {"matchLabels": {"tier": "web"}}, "egress": [{}]}}
    assert result(audit_objects(objects + [egress]), "missingNetworkPolicy", "api") is True
    egress["spec"]["podSelector"] = {"matchLabels": {"tier": "db"}}
    assert result(audit_objects(objects + [egress]), "missingNetworkPolicy", "api") is False


def test_service_account_automount():
    objects = _hardened()
    assert result(audit_objects(objects), "automountServiceAccountToken", "api") is True
    no_sa = [o for o in objects if o["kind"] != "ServiceAccount"]
    assert result(audit_objects(no_sa), "automountServiceAccountToken", "api") is False
    _kind(no_sa, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    assert result(audit_objects(no_sa), "automountServiceAccountToken", "api") is True
    _kind(objects, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    assert result(audit_objects(objects), "automountServiceAccountToken", "api") is False


def test_configmaps_with_secret_looking_content():
    findings = audit_objects(load("configmaps.yaml"))
    assert result(findings, "sensitiveConfigmapContent", "app-settings") is True
    assert result(findings, "sensitiveConfigmapContent", "db-settings") is False
    assert result(findings, "sensitiveConfigmapContent", "app-files") is False
    assert score(findings) == 33


def test_ingress_tls():
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"rules": [{"host": "shop.example"}]}}
    assert result(audit_objects([ingress]), "tlsSettingsMissing", "web") is False
    ingress["spec"]["tls"] = [{"hosts": ["shop.example"], "secretName": "tls"}]
    assert result(audit_objects([ingress]), "tlsSettingsMissing", "web") is True
