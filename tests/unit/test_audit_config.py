"""A Polaris config.yaml works unchanged: severities, exemptions, custom checks, annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_helpers import result

from pipeline.audit import audit_objects, load_config
from pipeline.audit.config import config_from_mapping
from pipeline.errors import AuditError

CONFIG = Path(__file__).resolve().parents[1] / "data" / "polaris" / "config.yaml"


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG)


def _deployment(name="web", namespace="shop", image="shop/web:1.0", limits=None, annotations=None,
                host_network=False, extra_containers=()):
    container = {"name": "web", "image": image}
    if limits is not None:
        container["resources"] = {"limits": limits}
    spec = {"containers": [container, *extra_containers]}
    if host_network:
        spec["hostNetwork"] = True
    metadata = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def test_checks_map_replaces_defaults(config):
    checks = {f.check for f in audit_objects([_deployment()], config)}
    assert "priorityClassNotSet" not in checks  # ignore
    assert "missingPodDisruptionBudget" not in checks  # ignore
    assert "metadataAndInstanceMismatched" not in checks  # not listed: not run, as in Polaris
    assert "linuxHardening" not in checks
    assert {"resourceLimits", "imageRegistry", "pdbNamedAfterDeployment", "tagNotSpecified"} <= checks
    assert config.unknown_checks == ("cpuLimitsRange",)


def test_severity_override(config):
    findings = audit_objects([_deployment()], config)
    assert next(f for f in findings if f.check == "runAsRootAllowed").severity == "warning"  # danger by default


def test_custom_check_with_resource_bounds(config):
    def ok(limits):
        return result(audit_objects([_deployment(limits=limits)], config), "resourceLimits", "web", "web")

    assert ok({"cpu": "500m", "memory": "512Mi"})
    assert not ok({"cpu": "4", "memory": "512Mi"})
    assert not ok({"cpu": "500m", "memory": "8G"})
    assert not ok({"cpu": "50m", "memory": "512Mi"})
    assert not ok(None)


def test_custom_check_image_registry(config):
    assert result(audit_objects([_deployment(image="quay.io/x/y:1")], config), "imageRegistry", "web", "web") is False
    assert result(audit_objects([_deployment()], config), "imageRegistry", "web", "web") is True


def test_custom_additional_schema_with_template(config):
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-pdb", "namespace": "shop"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    assert result(audit_objects([_deployment(), pdb], config), "pdbNamedAfterDeployment", "web") is True
    assert result(audit_objects([_deployment()], config), "pdbNamedAfterDeployment", "web") is False
    assert result(audit_objects([_deployment(name="api"), pdb], config), "pdbNamedAfterDeployment", "api") is False


def test_exemption_by_namespace_and_controller_name_prefix(config):
    exempt = audit_objects([_deployment(name="kube-proxy-canary", namespace="kube-system", host_network=True)], config)
    assert "hostNetworkSet" not in {f.check for f in exempt}
    assert "hostIPCSet" in {f.check for f in exempt}  # only the listed rules
    other_ns = audit_objects([_deployment(name="kube-proxy", namespace="default", host_network=True)], config)
    assert result(other_ns, "hostNetworkSet", "kube-proxy") is False
    anywhere = audit_objects([_deployment(name="dns-controller", namespace="x", host_network=True)], config)
    assert "hostNetworkSet" not in {f.check for f in anywhere}


def test_exemption_by_container_name(config):
    sidecar = {"name": "sidecar", "image": "envoy:1.29"}
    findings = audit_objects([_deployment(extra_containers=[sidecar])], config)
    assert not {"cpuLimitsMissing", "memoryLimitsMissing", "resourceLimits"} & {f.check for f in findings if f.container == "sidecar"}
    assert result(findings, "cpuLimitsMissing", "web", "web") is False
    assert result(findings, "cpuRequestsMissing", "web", "sidecar") is False


def test_exempt_annotations(config):
    one = audit_objects([_deployment(host_network=True,
                                     annotations={"polaris.fairwinds.com/hostNetworkSet-exempt": "true"})], config)
    assert "hostNetworkSet" not in {f.check for f in one}
    assert "hostPIDSet" in {f.check for f in one}
    assert audit_objects([_deployment(annotations={"polaris.fairwinds.com/exempt": "true"})], config) == []
    # the defaults honour them too
    assert audit_objects([_deployment(annotations={"polaris.fairwinds.com/exempt": "true"})]) == []


def test_config_errors_name_the_file_and_check(tmp_path):
    bad = tmp_path / "polaris.yaml"
    bad.write_text("checks: {mine: warning}\ncustomChecks:\n  mine:\n    successMessage: a\n    failureMessage: b\n"
                   "    category: Security\n    target: Container\n    schema: {type: [nope]}\n")
    with pytest.raises(AuditError, match=r"polaris\.yaml: customChecks\.mine: check mine: invalid JSON Schema"):
        load_config(bad)
    with pytest.raises(AuditError, match=r"checks\.hostIPCSet: severity 'fatal'"):
        config_from_mapping({"checks": {"hostIPCSet": "fatal"}}, "cfg.yaml")
    with pytest.raises(AuditError, match="exemptions\\[0\\]: controllerNames must be a list"):
        config_from_mapping({"exemptions": [{"controllerNames": "x"}]}, "cfg.yaml")


def test_error_is_an_alias_of_danger():
    config = config_from_mapping({"checks": {"hostIPCSet": "error"}}, "cfg.yaml")
    assert config.severity("hostIPCSet") == "danger"
