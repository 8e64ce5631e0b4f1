"""Checks on workloads: pods, controllers, their pod templates and containers."""

from __future__ import annotations

import copy

from audit_helpers import failed, load, result

from pipeline.audit import audit_objects, score, summarize
from pipeline.audit.score import Summary


def test_privileged_pod_exact_findings_and_score():
    findings = audit_objects(load("privileged-pod.yaml"))
    assert failed(findings, container=None) == {
        "automountServiceAccountToken", "hostNetworkSet", "hostPIDSet", "metadataAndInstanceMismatched",
        "missingNetworkPolicy", "priorityClassNotSet", "topologySpreadConstraint",
    }
    assert failed(findings, container="shell") == {
        "cpuLimitsMissing", "cpuRequestsMissing", "dangerousCapabilities", "hostPortSet", "insecureCapabilities",
        "linuxHardening", "livenessProbeMissing", "memoryLimitsMissing", "memoryRequestsMissing",
        "notReadOnlyRootFilesystem", "privilegeEscalationAllowed", "pullPolicyNotAlways", "readinessProbeMissing",
        "runAsPrivileged", "runAsRootAllowed", "tagNotSpecified",
    }
    passed = {f.check for f in findings if f.success}
    assert passed == {"hostIPCSet", "hostPathSet", "hostProcess", "procMount", "sensitiveContainerEnvVar"}
    # 5 successes, 16 warnings, 7 dangers: 10 / (10 + 16 + 14) = 25
    assert summarize(findings) == Summary(5, 16, 7)
    assert score(findings) == 25
    pod = [f for f in findings if f.container is None][0]
    assert (pod.kind, pod.namespace, pod.name, pod.pointer) == ("Pod", "tools", "root-shell", "/spec")
    container = [f for f in findings if f.container == "shell"][0]
    assert container.pointer == "/spec/containers/0"


def test_hardened_deployment_passes_everything():
    findings = audit_objects(load("hardened-deployment.yaml"))
    assert failed(findings) == set()
    assert score(findings) == 100
    # 5 controller + 8 pod spec checks, 18 container checks for "api" and 16 for the init
    # container (no probe checks there), and pdbDisruptionsIsZero on the PDB
    deployment = [f for f in findings if f.kind == "Deployment"]
    assert len([f for f in deployment if f.container is None]) == 13
    assert len([f for f in deployment if f.container == "api"]) == 18
    assert len([f for f in deployment if f.container == "migrate"]) == 16
    assert {f.check for f in deployment if f.container == "api"} - {f.check for f in deployment if f.container == "migrate"} \
        == {"livenessProbeMissing", "readinessProbeMissing"}
    assert [f.check for f in findings if f.kind == "PodDisruptionBudget"] == ["pdbDisruptionsIsZero"]


def test_hostpath_daemonset():
    findings = audit_objects(load("hostpath-daemonset.yaml"))
    assert result(findings, "hostPathSet", "log-shipper") is False
    assert result(findings, "tagNotSpecified", "log-shipper", "shipper") is False  # :latest
    # DaemonSets are not asked for replicas or PDBs (Polaris: Deployments, and StatefulSets here)
    checks = {f.check for f in findings}
    assert not checks & {"deploymentMissingReplicas", "missingPodDisruptionBudget"}
    assert result(findings, "topologySpreadConstraint", "log-shipper") is False
    assert summarize(findings) == Summary(9, 16, 3)
    assert score(findings) == 45


def test_jobs_are_not_asked_for_probes_and_cronjob_template_is_found():
    findings = audit_objects(load("jobs.yaml"))
    assert not {"livenessProbeMissing", "readinessProbeMissing"} & {f.check for f in findings}
    cron = [f for f in findings if f.name == "nightly" and f.container == "report"]
    assert cron[0].pointer == "/spec/jobTemplate/spec/template/spec/containers/0"
    assert result(findings, "tagNotSpecified", "nightly", "report") is False
    assert result(findings, "tagNotSpecified", "backfill", "run") is True
    assert result(findings, "sensitiveContainerEnvVar", "nightly", "report") is False
    assert score(findings) == 52


def _pod(container: dict, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [dict({"name": "c", "image": "img:1.0"}, **container)], **spec}}


def test_run_as_root_counts_pod_level_settings_unless_overridden():
    pod_level = _pod({}, securityContext={"runAsNonRoot": True})
    assert result(audit_objects([pod_level]), "runAsRootAllowed", "p", "c") is True
    overridden = _pod({"securityContext": {"runAsUser": 0}}, securityContext={"runAsNonRoot": True})
    assert result(audit_objects([overridden]), "runAsRootAllowed", "p", "c") is False
    container_level = _pod({"securityContext": {"runAsUser": 1000}})
    assert result(audit_objects([container_level]), "runAsRootAllowed", "p", "c") is True


def test_linux_hardening_by_pod_seccomp_or_dropping_all():
    assert result(audit_objects([_pod({}, securityContext={"seccompProfile": {"type": "RuntimeDefault"}})]),
                  "linuxHardening", "p", "c") is True
    assert result(audit_objects([_pod({}, securityContext={"seccompProfile": {"type": "Unconfined"}})]),
                  "linuxHardening", "p", "c") is False
    assert result(audit_objects([_pod({"securityContext": {"capabilities": {"drop": ["all"]}}})]),
                  "linuxHardening", "p", "c") is True


def test_image_tags():
    def tagged(image):
        return result(audit_objects([_pod({"image": image})]), "tagNotSpecified", "p", "c")

    assert tagged("nginx:1.25") and tagged("reg.local:5000/team/app:2") and tagged("app@sha256:" + "a" * 64)
    assert not tagged("nginx") and not tagged("nginx:latest") and not tagged("reg.local:5000/team/app")


def test_sensitive_env_vars_must_come_from_secrets():
    def ok(env):
        return result(audit_objects([_pod({"env": env})]), "sensitiveContainerEnvVar", "p", "c")

    assert not ok([{"name": "DB_PASSWORD", "value": "x"}])
    assert not ok([{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}])
    assert ok([{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}])
    assert ok([{"name": "MODE", "value": "fast"}])
    assert not ok([{"name": "CERT", "value": "-----BEGIN RSA PRIVATE KEY-----\nMII..."}])


def test_resource_quantities_are_values():
    zero = _pod({"resources": {"requests": {"cpu": "0", "memory": "64Mi"}}})
    findings = audit_objects([zero])
    assert result(findings, "cpuRequestsMissing", "p", "c") is False
    assert result(findings, "memoryRequestsMissing", "p", "c") is True


def test_replicas_and_instance_label():
    deployment = load("hardened-deployment.yaml")[1]
    single = copy.deepcopy(deployment)
    del single["spec"]["replicas"]
    single["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    findings = audit_objects([single])
    assert result(findings, "deploymentMissingReplicas", "api") is False
    assert result(findings, "metadataAndInstanceMismatched", "api") is False


def test_audit_objects_is_pure():
    objects = load("privileged-pod.yaml")
    before = copy.deepcopy(objects)
    assert audit_objects(objects) == audit_objects(objects)
    assert objects == before
