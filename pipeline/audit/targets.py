"""What a check looks at: objects expanded into controllers, pod specs and containers.

A workload (Pod, Deployment, CronJob...) has one pod spec, found at a JSON
pointer that depends on its kind; each container is found under it. Pointers
are kept so a fix can patch the original document at the right place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from pipeline.audit.manifests import WORKLOAD_KINDS

#: Kinds whose objects carry no namespace.
CLUSTER_SCOPED = frozenset({"ClusterRole", "ClusterRoleBinding", "Namespace", "PriorityClass"})

_POD_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (path to the pod spec, path to the pod metadata)
    "Pod": (("spec",), ("metadata",)),
    "CronJob": (("spec", "jobTemplate", "spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template", "metadata")),
}
_TEMPLATE = (("spec", "template", "spec"), ("spec", "template", "metadata"))


def api_group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def namespace_of(obj: dict) -> str:
    """The object's namespace as written; Polaris leaves it empty when a file omits it."""
    if obj.get("kind") in CLUSTER_SCOPED:
        return ""
    return str((obj.get("metadata") or {}).get("namespace") or "")


def same_namespace(a: str, b: str) -> bool:
    """Namespaces compare with an omitted one meaning ``default``, as kubectl applies them."""
    return (a or "default") == (b or "default")


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def mapping_at(obj: Any, *path: str) -> dict:
    """The mapping at ``path`` under ``obj``; {} when a step is missing or is not a mapping (a
    malformed manifest: a string where the API expects an object)."""
    found = _at(obj, path)
    return found if isinstance(found, dict) else {}


def _pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


@dataclass(frozen=True, slots=True)
class ContainerRef:
    container: dict
    is_init: bool
    pointer: str

    @property
    def name(self) -> str:
        return str(self.container.get("name") or "")


@dataclass(frozen=True, slots=True)
class Workload:
    """A controller (or naked pod) with its pod template."""

    index: int
    obj: dict
    pod_spec: dict
    pod_meta: dict
    pod_pointer: str

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return namespace_of(self.obj)

    @property
    def pod_labels(self) -> dict:
        labels = self.pod_meta.get("labels") if isinstance(self.pod_meta, dict) else None
        return labels if isinstance(labels, dict) else {}

    def containers(self) -> Iterator[ContainerRef]:
        for key, is_init in (("containers", False), ("initContainers", True)):
            items = self.pod_spec.get(key)
            if not isinstance(items, list):
                continue
            for position, container in enumerate(items):
                if isinstance(container, dict):
                    yield ContainerRef(container, is_init, f"{self.pod_pointer}/{key}/{position}")


def workload_of(index: int, obj: dict) -> Workload | None:
    """The workload view of an object, or None when it has no pod template."""
    kind = obj.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    spec_path, meta_path = _POD_PATHS.get(kind, _TEMPLATE)
    spec = _at(obj, spec_path)
    meta = _at(obj, meta_path)
    return Workload(
        index=index,
        obj=obj,
        pod_spec=spec if isinstance(spec, dict) else {},
        pod_meta=meta if isinstance(meta, dict) else {},
        pod_pointer=_pointer(spec_path),
    )


def matches_kind(target: str, obj: dict) -> bool:
    """Does a kind target (``Kind`` or ``group/Kind``) name this object's kind?

    A target without a group matches the kind in any group, as
    ``PodDisruptionBudget`` in Polaris's additionalSchemas does."""
    group, _, kind = target.rpartition("/")
    if obj.get("kind") != kind:
        return False
    return not group or api_group(str(obj.get("apiVersion", ""))) == group


def selector_matches(selector: Any, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions).

    An empty selector ({}) selects everything; a missing one (None) nothing."""
    if selector is None or not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, dict) or not isinstance(expressions, list):
        return False  # malformed (the API server refuses it): selects nothing, as a missing one
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expression in expressions:
        if not isinstance(expression, dict):
            return False
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if not isinstance(values, list):
            return False
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
