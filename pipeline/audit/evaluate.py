"""Run checks over a set of Kubernetes objects: the pure core of the audit.

:func:`audit_objects` takes plain dicts (as parsed from YAML, or as carried by
a K8s audit event) and returns :class:`Finding` records; it does no I/O, so a
Faust agent can call it per event. Checks with severity ``ignore`` and exempt
targets produce no finding, as in Polaris (they do not count in the score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from pipeline.audit.checks import Check
from pipeline.audit.config import AuditConfig, default_config
from pipeline.audit.lookups import LOOKUPS, WORKLOAD_LOOKUPS, Inventory
from pipeline.audit.targets import Workload, matches_kind, namespace_of, workload_of
from pipeline.audit.typed import typed_container, typed_pod_spec
from pipeline.audit.template import render_schema, render_text
from pipeline.audit.schema_ext import PolarisValidator
from pipeline.errors import AuditError


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict on one target. ``container`` is None for pod- and object-level
    checks; ``object_index`` is the object's position in the audited list and ``pointer``
    the JSON pointer of the check's target inside it (where a fix applies)."""

    check: str
    success: bool
    severity: str
    category: str
    message: str
    kind: str
    namespace: str
    name: str
    container: str | None
    api_version: str = ""
    object_index: int = -1
    pointer: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check, "success": self.success, "severity": self.severity, "category": self.category,
            "message": self.message, "kind": self.kind, "namespace": self.namespace, "name": self.name,
            "container": self.container, "apiVersion": self.api_version, "pointer": self.pointer,
        }


def _annotations(workload: Workload | None, obj: dict) -> list[dict]:
    found = [(obj.get("metadata") or {}).get("annotations") or {}]
    if workload is not None:
        found.append(workload.pod_meta.get("annotations") or {})
    return [a for a in found if isinstance(a, dict)]


def _controller_applies(check: Check, kind: str) -> bool:
    if check.controllers_include and kind not in check.controllers_include:
        return False
    return kind not in check.controllers_exclude


class _Run:
    """State of one audit: the objects, their index and the config."""

    def __init__(self, objects: list[dict], config: AuditConfig) -> None:
        self.objects = objects
        self.config = config
        self.inventory = Inventory(objects)

    def passes(self, check: Check, instance: Any, data: dict, workload: Workload | None, obj: dict) -> bool:
        if check.lookup:
            lookup = LOOKUPS[check.lookup]
            if check.lookup in WORKLOAD_LOOKUPS and workload is None:
                raise AuditError(f"{check.source}: lookup {check.lookup} needs a workload target, not {check.target}")
            instance = {"object": instance, "related": lookup(self.inventory, workload, obj)}
        try:
            if not check.validator_for(data).is_valid(instance):
                return False
            return all(self._additional_holds(kind, schema, text, data) for kind, schema, text in check.additional)
        except AuditError:
            raise
        except Exception as error:  # a schema that only breaks on some input (e.g. a bad $ref)
            raise AuditError(f"{check.source}: check {check.id} cannot be evaluated: {error}") from None

    def _additional_holds(self, kind: str, schema: Any, text: str | None, data: dict) -> bool:
        """Polaris's additionalSchemas: some object of that kind satisfies the rendered schema."""
        rendered = render_text(text, data) if text is not None else render_schema(schema, data)
        validator = PolarisValidator(rendered)
        return any(validator.is_valid(o) for o in self.objects if matches_kind(kind, o))

    def finding(self, check: Check, ok: bool, obj: dict, index: int, container: str | None, pointer: str) -> Finding:
        return Finding(
            check=check.id, success=ok, severity=self.config.severity(check.id), category=check.category,
            message=check.success_message if ok else check.failure_message,
            kind=str(obj.get("kind")), namespace=namespace_of(obj), name=str(obj["metadata"]["name"]),
            container=container, api_version=str(obj.get("apiVersion", "")), object_index=index, pointer=pointer,
        )

    def exempt(self, check: Check, obj: dict, workload: Workload | None, container: str | None) -> bool:
        return self.config.exempt(check.id, namespace_of(obj), str(obj["metadata"]["name"]), container,
                                  _annotations(workload, obj))

    def workload_findings(self, checks: list[Check], workload: Workload) -> Iterator[Finding]:
        obj, index = workload.obj, workload.index
        pod_spec = typed_pod_spec(workload.pod_spec)
        template = {"metadata": workload.pod_meta, "spec": pod_spec}
        polaris = {"PodSpec": pod_spec, "PodTemplate": template}
        for check in checks:
            if check.target not in ("Controller", "PodSpec", "PodTemplate") or not _controller_applies(check, workload.kind):
                continue
            if self.exempt(check, obj, workload, None):
                continue
            if check.target == "Controller":
                instance, pointer = obj, ""
            else:
                use_template = "PodTemplate" in (check.target, check.schema_target)
                instance = template if use_template else pod_spec
                pointer = workload.pod_pointer
            data = dict(instance) if isinstance(instance, dict) else {}
            data["Polaris"] = polaris
            yield self.finding(check, self.passes(check, instance, data, workload, obj), obj, index, None, pointer)
        for ref in workload.containers():
            for check in checks:
                if check.target != "Container" or not _controller_applies(check, workload.kind):
                    continue
                if ref.is_init and "initContainer" in check.containers_exclude:
                    continue
                if not ref.is_init and "container" in check.containers_exclude:
                    continue
                if self.exempt(check, obj, workload, ref.name):
                    continue
                instance = _container_instance(check, pod_spec, workload.pod_meta, typed_container(ref.container))
                data = dict(ref.container)
                data["Polaris"] = dict(polaris, Container=ref.container)
                yield self.finding(check, self.passes(check, instance, data, workload, obj), obj, index, ref.name, ref.pointer)

    def object_findings(self, checks: list[Check], index: int, obj: dict) -> Iterator[Finding]:
        for check in checks:
            if check.target in ("Container", "PodSpec", "Controller", "PodTemplate") or not matches_kind(check.target, obj):
                continue
            if self.exempt(check, obj, None, None):
                continue
            data = dict(obj)
            yield self.finding(check, self.passes(check, obj, data, None, obj), obj, index, None, "")


def _container_instance(check: Check, pod_spec: dict, pod_meta: dict, container: Any) -> Any:
    """A container check sees the container, or with ``schemaTarget: PodSpec`` the pod spec
    narrowed to that one container (so pod-level settings count, as in Polaris)."""
    if check.schema_target in ("PodSpec", "Pod", "PodTemplate"):
        narrowed = dict(pod_spec)
        narrowed["containers"] = [container]
        narrowed.pop("initContainers", None)
        if check.schema_target == "PodTemplate":
            return {"metadata": pod_meta, "spec": narrowed}
        return narrowed
    return container


def audit_objects(objects: list[dict], config: AuditConfig | None = None) -> list[Finding]:
    """Every finding of the active checks on ``objects`` (each a Kubernetes object as a dict).

    Objects are related to each other (PDBs, HPAs, NetworkPolicies, roles) only
    within this list. Order: objects as given; per workload, controller and pod
    checks, then each container's checks; checks by id."""
    config = config or default_config()
    run = _Run(objects, config)
    checks = sorted(config.active(), key=lambda c: c.id)
    findings: list[Finding] = []
    for index, obj in enumerate(objects):
        workload = workload_of(index, obj)
        if workload is not None:
            findings.extend(run.workload_findings(checks, workload))
        findings.extend(run.object_findings(checks, index, obj))
    return findings
