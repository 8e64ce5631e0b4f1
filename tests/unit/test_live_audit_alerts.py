"""Live audit: Polaris checks on the objects K8s audit events create, update or patch."""

from __future__ import annotations

import copy
import uuid

import orjson
import pytest

from live_audit_events import as_request, audit_event, hardened_deployment, hardened_pod, privileged_pod
from pipeline.alerts import falco_json_dict
from pipeline.audit.config import config_from_mapping, default_config
from pipeline.audit.live import LiveAudit, is_live, rule_name
from pipeline.rules.model import Priority

PRIVILEGED = "Polaris runAsPrivileged: Should not be running as privileged"


def fresh(**kwargs) -> LiveAudit:
    kwargs.setdefault("hostname", "test-host")
    return LiveAudit(**kwargs)


def pod_create(pod: dict, **kwargs) -> dict:
    return audit_event("create", "pods", name=pod["metadata"]["name"], request=as_request(pod), response=pod, **kwargs)


def test_privileged_pod_created_by_a_user_is_an_alert_naming_check_object_and_user():
    live = fresh()
    alerts = live.alerts(pod_create(privileged_pod("debug", "shop"), user="alice@example.com"))
    assert [a.rule for a in alerts] == [PRIVILEGED]
    alert = alerts[0]
    assert alert.priority is Priority.ERROR and alert.source == "k8s_audit"
    assert alert.tags == ("k8s", "polaris", "security")
    assert alert.hostname == "test-host"
    assert alert.output_fields == {
        "evt.time": 1714564801123456000,
        "ka.auditid": "7d0b6a52-3c1e-4b8f-9e2a-00000000a001",
        "ka.verb": "create",
        "ka.user.name": "alice@example.com",
        "ka.target.resource": "pods",
        "ka.target.namespace": "shop",
        "ka.target.name": "debug",
        "polaris.check": "runAsPrivileged",
        "polaris.severity": "danger",
        "polaris.category": "Security",
        "polaris.container": "shell",
        "polaris.kind": "Pod",
    }
    assert alert.output == (
        "12:00:01.123456000: Error Polaris check runAsPrivileged failed: Should not be running as privileged "
        "(user=alice@example.com verb=create kind=Pod namespace=shop name=debug container=shell severity=danger category=Security)"
    )
    document = falco_json_dict(alert)
    assert document["priority"] == "Error" and document["time"] == "2024-05-01T12:00:01.123456000Z"
    assert live.counts == {"audited": 1}


def test_a_compliant_pod_gives_no_alert_but_is_counted_as_audited():
    live = fresh()
    assert live.alerts(pod_create(hardened_pod())) == []
    assert live.counts == {"audited": 1}


@pytest.mark.parametrize("verb", ["delete", "get", "list", "watch", "deletecollection"])
def test_other_verbs_are_not_looked_at(verb):
    live = fresh()
    event = audit_event(verb, "pods", name="debug", response=privileged_pod(), request=privileged_pod())
    assert live.alerts(event) == []
    assert live.counts == {}  # filtered before any work: not even counted


def test_the_filter_does_not_touch_the_objects_of_events_it_skips():
    class Untouchable(dict):
        def get(self, *args):
            raise AssertionError("the object was read")

        def __getitem__(self, key):
            raise AssertionError("the object was read")

    live = fresh()
    for event in (
        audit_event("get", "pods", name="x"),
        audit_event("create", "pods", name="x", stage="ResponseStarted"),
        audit_event("create", "pods", name="x", subresource="binding"),
        audit_event("update", "pods", name="x", subresource="status"),
        audit_event("create", "pods", name="x") | {"objectRef": {"resource": "secrets", "namespace": "shop", "name": "x"}},
    ):
        event["requestObject"] = Untouchable(kind="Pod")
        event["responseObject"] = Untouchable(kind="Pod")
        assert not live.applies(event)
        assert live.alerts(event) == []
    assert live.counts == {}


def test_metadata_level_event_is_skipped_and_counted():
    live = fresh()
    event = audit_event("create", "pods", name="debug", level="Metadata", request=privileged_pod(), response=privileged_pod())
    assert "requestObject" not in event and "responseObject" not in event
    assert live.alerts(event) == []
    assert live.counts == {"no_object": 1}


def test_the_stored_object_is_preferred_to_the_request():
    # a mutating webhook made the stored pod privileged: the request alone looks clean
    stored = privileged_pod("api")
    event = audit_event("create", "pods", name="api", request=as_request(hardened_pod("api")), response=stored)
    assert [a.rule for a in fresh().alerts(event)] == [PRIVILEGED]
    # and the other way round: a webhook hardened it, nothing to report
    event = audit_event("create", "pods", name="api", request=as_request(privileged_pod("api")), response=hardened_pod("api"))
    assert fresh().alerts(event) == []


def test_request_object_when_the_response_is_not_a_whole_object():
    request = as_request(privileged_pod("debug"))
    truncated = {"metadata": {"name": "debug"}}  # some API servers and proxies trim objects
    for response in (None, truncated, {"kind": "Status", "apiVersion": "v1", "status": "Success"}):
        live = fresh()
        event = audit_event("create", "pods", name="debug", request=request, response=response)
        assert [a.rule for a in live.alerts(event)] == [PRIVILEGED], response
        assert live.counts == {"audited": 1}
    # Request level: only the request object is logged
    event = audit_event("create", "pods", name="debug", level="Request", request=request, response=privileged_pod())
    assert "responseObject" not in event
    assert [a.output_fields["ka.target.namespace"] for a in fresh().alerts(event)] == ["shop"]


def test_a_patch_is_audited_on_the_stored_object_never_on_the_patch_body():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "securityContext": {"privileged": True}}]}}}}
    live = fresh()
    event = audit_event("patch", "deployments", name="api", request=patch, response=None, query="fieldManager=kubectl-patch")
    assert live.alerts(event) == []
    assert live.counts == {"no_object": 1}
    stored = hardened_deployment("api")
    stored["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    event = audit_event("patch", "deployments", name="api", request=patch, response=stored)
    alerts = live.alerts(event)
    assert [(a.rule, a.output_fields["ka.verb"], a.output_fields["polaris.container"]) for a in alerts] == [(PRIVILEGED, "patch", "api")]


def test_deployment_update_runs_the_pod_template_checks():
    deployment = hardened_deployment("web", "shop")
    spec = deployment["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    container = spec["containers"][0]
    container["image"] = "nginx"  # no tag
    del container["resources"]["limits"]["memory"]
    event = audit_event("update", "deployments", name="web", request=as_request(deployment), response=deployment, user="ci-bot")
    alerts = fresh().alerts(event)
    found = {(a.output_fields["polaris.check"], a.output_fields["polaris.container"], a.priority) for a in alerts}
    assert found == {
        ("hostNetworkSet", None, Priority.ERROR),
        ("tagNotSpecified", "api", Priority.ERROR),
        ("memoryLimitsMissing", "api", Priority.WARNING),
    }
    assert {a.output_fields["ka.target.resource"] for a in alerts} == {"deployments"}
    assert {a.output_fields["polaris.kind"] for a in alerts} == {"Deployment"}
    assert {a.output_fields["ka.user.name"] for a in alerts} == {"ci-bot"}
    assert all("kind=Deployment namespace=shop name=web" in a.output for a in alerts)
    assert next(a for a in alerts if a.output_fields["polaris.check"] == "hostNetworkSet").tags == ("k8s", "polaris", "security")
    assert next(a for a in alerts if a.output_fields["polaris.check"] == "memoryLimitsMissing").tags == ("efficiency", "k8s", "polaris")


def test_exempt_annotations_are_honoured():
    pod = privileged_pod("debug")
    pod["metadata"]["annotations"] = {"polaris.fairwinds.com/runAsPrivileged-exempt": "true"}
    pod["spec"]["containers"][0]["image"] = "busybox"
    alerts = fresh().alerts(pod_create(pod))
    assert [a.output_fields["polaris.check"] for a in alerts] == ["tagNotSpecified"]
    pod["metadata"]["annotations"] = {"polaris.fairwinds.com/exempt": "true"}
    live = fresh()
    assert live.alerts(pod_create(pod)) == []
    assert live.counts == {"audited": 1}
    # on a Deployment's pod template too
    deployment = hardened_deployment("web")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    deployment["spec"]["template"]["metadata"]["annotations"] = {"polaris.fairwinds.com/runAsPrivileged-exempt": "true"}
    assert fresh().alerts(audit_event("create", "deployments", name="web", request=deployment, response=deployment)) == []


def test_a_polaris_config_sets_severities_and_exemptions():
    config = config_from_mapping({
        "checks": {"runAsPrivileged": "warning", "tagNotSpecified": "ignore", "hostPIDSet": "danger"},
        "exemptions": [{"namespace": "kube-system", "rules": ["hostPIDSet"]}],
    }, "polaris.yaml")
    live = LiveAudit(config, hostname="h")
    pod = privileged_pod("debug")
    pod["spec"]["hostPID"] = True
    pod["spec"]["containers"][0]["image"] = "busybox"
    alerts = live.alerts(pod_create(pod))
    assert sorted((a.output_fields["polaris.check"], a.priority.label) for a in alerts) == [
        ("hostPIDSet", "Error"), ("runAsPrivileged", "Warning")]
    system = privileged_pod("debug", "kube-system")
    system["spec"]["hostPID"] = True
    alerts = live.alerts(audit_event("create", "pods", name="debug", namespace="kube-system", response=system))
    assert [a.output_fields["polaris.check"] for a in alerts] == ["runAsPrivileged"]


def test_objects_the_api_server_did_not_store_are_skipped():
    live = fresh()
    forbidden = audit_event("create", "pods", name="debug", request=privileged_pod(), code=403,
                            response={"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403})
    assert live.alerts(forbidden) == []
    dry = audit_event("create", "pods", name="debug", request=privileged_pod(), response=privileged_pod(),
                      query="dryRun=All&fieldManager=kubectl-client-side-apply")
    assert live.alerts(dry) == []
    assert live.counts == {"rejected": 1, "dry_run": 1}


def test_objects_controlled_by_an_audited_workload_are_left_to_their_owner():
    pod = privileged_pod("web-7c9d5f-x2k4p")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9d5f",
                                           "uid": "9a1b", "controller": True, "blockOwnerDeletion": True}]
    live = fresh()
    event = pod_create(pod, user="system:serviceaccount:kube-system:replicaset-controller")
    assert live.alerts(event) == []
    assert live.counts == {"owned": 1}
    # a mirror pod (owned by its Node) or a pod of an operator's custom resource is audited
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "1", "controller": True}]
    assert [a.rule for a in live.alerts(pod_create(pod))] == [PRIVILEGED]
    assert [a.rule for a in fresh(skip_owned=False).alerts(event)] == [PRIVILEGED]


def test_cross_object_checks_do_not_run_live():
    live = fresh()
    assert set(live.skipped_checks) == {
        "automountServiceAccountToken", "missingPodDisruptionBudget", "missingNetworkPolicy",
        "pdbMinAvailableGreaterThanOrEqualToHPAMinReplicas", "clusterrolebindingClusterAdmin",
        "clusterrolebindingPodExecAttach", "rolebindingClusterAdminClusterRole", "rolebindingClusterAdminRole",
        "rolebindingClusterRolePodExecAttach", "rolebindingRolePodExecAttach",
    }
    assert len(live.config.active()) == len(default_config().active()) - 10 == 34
    assert all(is_live(c) for c in live.config.checks)
    # a Deployment with no PDB, no NetworkPolicy, no ServiceAccount in sight: those checks would fail
    # in a manifest audit of it alone, but live they are not judged
    deployment = hardened_deployment("api")
    assert live.alerts(audit_event("create", "deployments", name="api", response=deployment)) == []


def test_single_object_checks_on_other_kinds():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "debugger"},
            "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]}
    event = audit_event("create", "clusterroles", name="debugger", namespace=None, request=role, response=role)
    alerts = fresh().alerts(event)
    assert [a.output_fields["polaris.check"] for a in alerts] == ["clusterrolePodExecAttach"]
    assert alerts[0].output_fields["ka.target.namespace"] is None
    assert "namespace=<NA> name=debugger container=<NA>" in alerts[0].output


def test_alert_ids_are_deterministic_per_event_check_and_container():
    event = pod_create(privileged_pod("debug"))
    event["responseObject"]["spec"]["containers"].append(copy.deepcopy(event["responseObject"]["spec"]["containers"][0]) | {"name": "second"})
    first = fresh().alerts(event)
    reordered = orjson.loads(orjson.dumps(dict(reversed(list(event.items())))))
    again = fresh().alerts(reordered)
    assert [a.uuid for a in first] == [a.uuid for a in again]
    assert len({a.uuid for a in first}) == len(first) == 2  # one per container
    assert all(uuid.UUID(a.uuid).version == 5 for a in first)
    other = fresh().alerts(event | {"auditID": "7d0b6a52-3c1e-4b8f-9e2a-00000000a002"})
    assert not {a.uuid for a in other} & {a.uuid for a in first}


def test_odd_objects_never_raise():
    live = fresh()
    odd_objects = [
        {"kind": "Pod", "metadata": ["not", "a", "mapping"], "spec": {"containers": []}},
        {"kind": "Pod", "spec": {"containers": "nginx"}},
        {"kind": "Pod", "spec": "nope"},
        {"kind": "Deployment", "spec": {"template": None}},
        ["a", "list"],
        "text",
    ]
    for obj in odd_objects:
        assert live.alerts(audit_event("create", "pods", name="x", request=obj, response=obj)) == []
    # a pod with no metadata at all takes its name and namespace from the event
    bare = {"spec": {"containers": [{"name": "c", "image": "busybox:1", "securityContext": {"privileged": True}}]}}
    alerts = live.alerts(audit_event("create", "pods", name="bare", request=bare))
    assert PRIVILEGED in {a.rule for a in alerts}
    assert {(a.output_fields["ka.target.namespace"], a.output_fields["ka.target.name"]) for a in alerts} == {("shop", "bare")}
    # containers that are not mappings, strings where numbers go
    weird = {"kind": "Pod", "metadata": {"name": "w", "annotations": ["x"]},
             "spec": {"containers": [1, {"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}}
    assert "Polaris hostProcess: Privileged access to the host is disallowed" in {
        a.rule for a in live.alerts(audit_event("create", "pods", name="w", request=weird))}
    assert live.counts == {"no_object": len(odd_objects), "audited": 2}


def test_a_check_that_cannot_be_evaluated_is_counted_and_logged_not_raised(monkeypatch, caplog):
    import pipeline.audit.live as live_module
    from pipeline.errors import AuditError

    def broken(objects, config):
        raise AuditError("custom.yaml: check imageRegistry cannot be evaluated: bad $ref")

    monkeypatch.setattr(live_module, "audit_objects", broken)
    seen: list[str] = []
    live = fresh(observe=seen.append)
    assert live.alerts(pod_create(privileged_pod("debug"))) == []
    assert live.counts == {"error": 1} and seen == ["error"]
    assert "live audit of Pod shop/debug" in caplog.text and "bad $ref" in caplog.text


def test_rule_name_form():
    assert rule_name("runAsPrivileged", "Should not be running as privileged") == PRIVILEGED
    assert rule_name("custom", "") == "Polaris custom"


def test_scanner_runs_the_live_audit_on_k8s_audit_events_only():
    from pipeline.rules.loader import RulesLoader
    from pipeline.scan import Scanner

    ruleset = RulesLoader().load()
    scanner = Scanner(ruleset, source="auto", hostname="scan-host", live_audit=fresh(hostname=""))
    assert scanner.live_audit.hostname == "scan-host"
    pod = privileged_pod("debug")
    pod["spec"]["containers"][0]["image"] = "busybox"
    pod["spec"]["hostIPC"] = True
    event = pod_create(pod)
    assert {a.rule.split(":")[0] for a in scanner.scan_event(event, "k8s_audit")} == {
        "Polaris runAsPrivileged", "Polaris tagNotSpecified", "Polaris hostIPCSet"}
    assert scanner.scan_event(event, "syscall") == []
    severe = Scanner(ruleset, source="auto", hostname="h", min_priority=Priority.ERROR, live_audit=fresh())
    assert {a.output_fields["polaris.severity"] for a in severe.scan_event(event, "k8s_audit")} == {"danger"}
