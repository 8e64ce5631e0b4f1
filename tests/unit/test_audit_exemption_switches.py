"""Polaris's exemption settings, read as Polaris reads them (each test failed before its fix).

* ``disallowExemptions`` / ``disallowConfigExemptions`` / ``disallowAnnotationExemptions`` were
  ignored: an exempt object stayed exempt in a config that forbids exemptions.
* ``exemptions[].containerNames`` matched whole names; Polaris matches name prefixes.
"""

from __future__ import annotations

import pytest

from audit_helpers import EXEMPTING_CONFIG, HOST_NETWORK_EXEMPT, exempt_pod

from pipeline.audit import audit_objects
from pipeline.audit.config import config_from_mapping
from pipeline.errors import AuditError


def _failed(obj, document) -> set[str]:
    return {f.check for f in audit_objects([obj], config_from_mapping(document, "polaris.yaml")) if not f.success}


@pytest.mark.parametrize(("switches", "failing"), [
    ({}, set()),
    ({"disallowExemptions": True}, {"hostNetworkSet", "runAsRootAllowed"}),
    ({"disallowConfigExemptions": True}, {"runAsRootAllowed"}),
    ({"disallowAnnotationExemptions": True}, {"hostNetworkSet"}),
])
def test_disallow_exemption_switches_in_the_config(switches, failing):
    assert _failed(exempt_pod(HOST_NETWORK_EXEMPT), {**EXEMPTING_CONFIG, **switches}) == failing


def test_a_disallow_switch_must_be_a_boolean():
    with pytest.raises(AuditError, match=r"polaris.yaml: disallowExemptions must be true or false, not 'yes'"):
        config_from_mapping({"disallowExemptions": "yes"}, "polaris.yaml")


def test_container_names_are_prefixes_as_in_polaris():
    containers = [{"name": "sidecar-istio-proxy", "image": "istio/proxyv2:1.20"}, {"name": "dns", "image": "dns:1.0"}]
    document = {"checks": {"runAsRootAllowed": "danger", "hostNetworkSet": "danger"},
                "exemptions": [{"containerNames": ["sidecar"], "rules": ["runAsRootAllowed", "hostNetworkSet"]}]}
    findings = audit_objects([exempt_pod(containers=containers)], config_from_mapping(document, "polaris.yaml"))
    assert {(f.check, f.container) for f in findings if not f.success} == {
        ("runAsRootAllowed", "dns"),
        ("hostNetworkSet", None),  # a pod-level check has no container name to match
    }
