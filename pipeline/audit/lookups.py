"""Cross-object lookups: the Python equivalent of Polaris's templated additionalSchemas.

A check that relates its target to other objects of the same audit names one
of these; the lookup returns plain data (lists of objects or derived numbers)
and the check's schema asserts on ``{"object": target, "related": result}``.
Each lookup is a pure function of the audited objects.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable

from pipeline.audit.targets import Workload, mapping_at, namespace_of, same_namespace, selector_matches


class Inventory:
    """Every object of one audit, indexed by kind."""

    __slots__ = ("objects", "_by_kind")

    def __init__(self, objects: list[dict]) -> None:
        self.objects = objects
        self._by_kind: dict[str, list[dict]] = defaultdict(list)
        for obj in objects:
            self._by_kind[str(obj.get("kind"))].append(obj)

    def of_kind(self, kind: str) -> list[dict]:
        return self._by_kind.get(kind, [])


def _in_namespace(objects: list[dict], namespace: str) -> list[dict]:
    return [o for o in objects if same_namespace(namespace_of(o), namespace)]


def service_account(inventory: Inventory, workload: Workload, _obj: dict) -> list[dict]:
    """The ServiceAccount the pod runs as (``default`` when unnamed), if in the audit."""
    name = workload.pod_spec.get("serviceAccountName") or workload.pod_spec.get("serviceAccount") or "default"
    return [sa for sa in _in_namespace(inventory.of_kind("ServiceAccount"), workload.namespace)
            if sa["metadata"]["name"] == name]


def pod_disruption_budgets(inventory: Inventory, workload: Workload, _obj: dict) -> list[dict]:
    """PodDisruptionBudgets of the workload's namespace whose selector selects its pods."""
    return [pdb for pdb in _in_namespace(inventory.of_kind("PodDisruptionBudget"), workload.namespace)
            if selector_matches(mapping_at(pdb, "spec").get("selector"), workload.pod_labels)]


def _hpas_for(inventory: Inventory, workload: Workload) -> list[dict]:
    found = []
    for hpa in _in_namespace(inventory.of_kind("HorizontalPodAutoscaler"), workload.namespace):
        ref = mapping_at(hpa, "spec", "scaleTargetRef")
        if ref.get("kind") == workload.kind and ref.get("name") == workload.name:
            found.append(hpa)
    return found


def _resolve(value: Any, total: int) -> int | None:
    """An IntOrString of a PDB against a replica count (percentages round up, as the API does)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            return math.ceil(float(text[:-1]) * total / 100)
        except (ValueError, OverflowError):  # not a number, NaN, infinite
            return None
    try:
        return int(text)
    except ValueError:
        return None


def pdb_against_hpa(inventory: Inventory, workload: Workload, _obj: dict) -> list[dict]:
    """Each (PDB selecting the pods, HPA scaling the controller) pair with a PDB minAvailable,
    and ``margin`` = HPA minReplicas − PDB minAvailable (must stay above zero, or no pod can
    ever be evicted while the HPA sits at its minimum)."""
    pairs = []
    for pdb in pod_disruption_budgets(inventory, workload, _obj):
        min_available = mapping_at(pdb, "spec").get("minAvailable")
        if min_available is None:
            continue
        for hpa in _hpas_for(inventory, workload):
            min_replicas = mapping_at(hpa, "spec").get("minReplicas", 1)
            if not isinstance(min_replicas, int) or isinstance(min_replicas, bool):
                continue
            resolved = _resolve(min_available, min_replicas)
            if resolved is None:
                continue
            pairs.append({
                "pdb": pdb["metadata"]["name"], "hpa": hpa["metadata"]["name"],
                "minAvailable": resolved, "minReplicas": min_replicas, "margin": min_replicas - resolved,
            })
    return pairs


def network_policies(inventory: Inventory, workload: Workload, _obj: dict) -> list[dict]:
    """NetworkPolicies of the namespace selecting the pods, with ``policyTypes`` made explicit
    (Kubernetes: Ingress always, Egress when egress rules are given)."""
    found = []
    for policy in _in_namespace(inventory.of_kind("NetworkPolicy"), workload.namespace):
        spec = mapping_at(policy, "spec")
        if not selector_matches(spec.get("podSelector", {}), workload.pod_labels):
            continue
        types = spec.get("policyTypes")
        if not types or not isinstance(types, list):
            types = ["Ingress"] + (["Egress"] if "egress" in spec else [])
        found.append({"name": policy["metadata"]["name"], "policyTypes": list(types)})
    return found


def referenced_role(inventory: Inventory, _workload: Workload | None, binding: dict) -> list[dict]:
    """The Role or ClusterRole a (Cluster)RoleBinding's roleRef names, if in the audit."""
    ref = mapping_at(binding, "roleRef")
    kind, name = ref.get("kind"), ref.get("name")
    if kind == "ClusterRole":
        return [role for role in inventory.of_kind("ClusterRole") if role["metadata"]["name"] == name]
    if kind == "Role":
        return [role for role in _in_namespace(inventory.of_kind("Role"), namespace_of(binding))
                if role["metadata"]["name"] == name]
    return []


def hpa_replica_range(_inventory: Inventory, _workload: Workload | None, hpa: dict) -> dict:
    """Not a related object but a derived fact JSON Schema cannot compute: the HPA's
    ``spread`` = maxReplicas − minReplicas, or None when minReplicas is not set."""
    spec = mapping_at(hpa, "spec")
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    return {"spread": high - low if numbers else None}


LOOKUPS: dict[str, Callable[[Inventory, Workload | None, dict], Any]] = {
    "serviceAccount": service_account,
    "podDisruptionBudgets": pod_disruption_budgets,
    "pdbAgainstHpa": pdb_against_hpa,
    "networkPolicies": network_policies,
    "referencedRole": referenced_role,
    "hpaReplicaRange": hpa_replica_range,
}
#: Lookups that need the workload (pod template), not just the object.
WORKLOAD_LOOKUPS = frozenset({"serviceAccount", "podDisruptionBudgets", "pdbAgainstHpa", "networkPolicies"})
