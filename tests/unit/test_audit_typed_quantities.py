"""Quantities written as YAML numbers reach the schemas as Polaris gives them.

Polaris validates containers and pod specs after Kubernetes's typed round trip, which turns
``cpu: 1`` into ``"1"``; Peregrine passed the number, so Polaris's own example custom check
(``type: string`` with ``resourceMinimum``) failed there (the first test failed before the fix).
"""

from __future__ import annotations

import copy

from pipeline.audit import audit_objects
from pipeline.audit.config import config_from_mapping
from pipeline.audit.typed import quantity_text, typed_pod_spec


def _pod(containers):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": containers}}


RESOURCE_LIMITS = {  # the custom check of Polaris's example config, unchanged
    "checks": {"resourceLimits": "warning"},
    "customChecks": {"resourceLimits": {
        "containers": {"exclude": ["initContainer"]},
        "successMessage": "Resource limits are within the required range",
        "failureMessage": "Resource limits should be within the required range",
        "category": "Resources", "target": "Container",
        "schema": {"type": "object", "required": ["resources"], "properties": {"resources": {
            "type": "object", "required": ["limits"], "properties": {"limits": {
                "type": "object", "required": ["memory", "cpu"], "properties": {
                    "memory": {"type": "string", "resourceMinimum": "100M", "resourceMaximum": "6G"},
                    "cpu": {"type": "string", "resourceMinimum": "100m", "resourceMaximum": "2"}}}}}}},
    }},
}


def test_numeric_quantities_reach_the_schema_as_kubernetes_prints_them():
    containers = [
        {"name": "a", "image": "a:1", "resources": {"limits": {"cpu": 1, "memory": 1073741824}}},
        {"name": "b", "image": "b:1", "resources": {"limits": {"cpu": 0.5, "memory": "512Mi"}}},
        {"name": "c", "image": "c:1", "resources": {"limits": {"cpu": 4, "memory": "512Mi"}}},  # above 2 cpus
    ]
    pod = _pod(containers)
    before = copy.deepcopy(pod)
    findings = audit_objects([pod], config_from_mapping(RESOURCE_LIMITS, "polaris.yaml"))
    assert {f.container: f.success for f in findings} == {"a": True, "b": True, "c": False}
    assert pod == before  # the manifest itself is not changed (a --fix writes it as written)


def test_quantity_text_is_kubernetes_canonical_form():
    assert [quantity_text(n) for n in (1, 0.5, 1.5, 2000, 1500, 128000000, 1e-12, 0)] == [
        "1", "500m", "1500m", "2k", "1500", "128M", "1n", "0"]
    spec = {"overhead": {"cpu": 0.25}, "initContainers": [{"name": "i", "resources": {"requests": {"cpu": 2}}}],
            "containers": [{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}]}
    typed = typed_pod_spec(spec)
    assert typed["overhead"] == {"cpu": "250m"}
    assert typed["initContainers"][0]["resources"]["requests"] == {"cpu": "2"}
    assert typed["containers"] is spec["containers"]  # nothing numeric: not copied
    assert spec["overhead"] == {"cpu": 0.25}
