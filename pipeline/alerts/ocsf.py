"""An alert as an OCSF Detection Finding (class 2004, schema 1.1.0).

The worker produces it to its own topic when ``PEREGRINE_OCSF_TOPIC`` is set,
keyed like the Falco JSON alert. The document (schemas/ocsf-detection-finding.schema.json
is the subset Peregrine writes):

- ``class_uid`` 2004 Detection Finding, ``category_uid`` 2 Findings,
  ``activity_id`` 1 Create, ``type_uid`` 200401, ``status_id`` 1 New;
- ``severity_id`` from Falco's priority (:data:`SEVERITY`);
- ``time`` and ``finding_info.created_time``: the alert's event time in ms
  (the event's, not the clock's, so a replayed alert is the same finding);
- ``finding_info``: ``uid`` the alert's uuid, ``title`` the rule, ``desc``
  Falco's output line, ``types`` the rule's tags (else its source), the
  rule as the ``analytic``;
- ``metadata``: ``product`` (Peregrine), ``version`` the OCSF schema version;
- ``resources``: the container and the Kubernetes pod (or the audit event's
  target object) when the rule's output carries them;
- ``evidences``: the process (with its parent and user), or for audit/cloud
  alerts the acting user, when present. OCSF 1.1.0's Evidence Artifacts have
  no container: the container is the process's ``container`` (the Container
  profile, named in ``metadata.profiles``), and only when it is whole, as
  OCSF requires it: its id and its image's id (``container.image.id``);
  otherwise the container is a resource only;
- ``unmapped``: Falco's ``output_fields``, every one of them.

Only fields the rule's output prints are in ``output_fields``, so what can be
mapped depends on the rule, as with Falco's own outputs.
"""

from __future__ import annotations

from typing import Any, Mapping


from pipeline import __version__
from pipeline.alerts.alert import Alert
from pipeline.ingest.numbers import int64
from pipeline.json_bytes import json_bytes
from pipeline.rules.model import Priority

OCSF_VERSION = "1.1.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
STATUS_NEW = 1
#: the OCSF profile that gives a process its ``container``
CONTAINER_PROFILE = "container"

# Falco priority -> OCSF severity_id (0 Unknown, 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical, 6 Fatal)
SEVERITY: dict[Priority, int] = {
    Priority.EMERGENCY: 6,
    Priority.ALERT: 5,
    Priority.CRITICAL: 5,
    Priority.ERROR: 4,
    Priority.WARNING: 3,
    Priority.NOTICE: 2,
    Priority.INFORMATIONAL: 1,
    Priority.DEBUG: 1,
}
SEVERITY_NAMES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
PRODUCT = {"name": "Peregrine", "vendor_name": "Peregrine", "version": __version__}


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _pick(fields: Mapping[str, Any], mapping: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """{ocsf name: fields[falco name]} for the falco names present (first one wins)."""
    out: dict[str, Any] = {}
    for ocsf_name, falco_name in mapping:
        if ocsf_name not in out and _present(fields.get(falco_name)):
            value = fields[falco_name]
            out[ocsf_name] = value if isinstance(value, str) else str(value)
    return out


def _user(fields: Mapping[str, Any], name_keys: tuple[str, ...], uid_keys: tuple[str, ...] = ()) -> dict[str, Any] | None:
    user = _pick(fields, tuple(("name", k) for k in name_keys))
    for key in uid_keys:
        if _present(fields.get(key)):
            user["uid"] = str(fields[key])
            break
    return user or None


def _process(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    process = _pick(fields, (("name", "proc.name"), ("cmd_line", "proc.cmdline")))
    pid = int64(fields.get("proc.pid"))
    if pid is not None:
        process["pid"] = pid
    path = next((fields[k] for k in ("proc.exepath", "proc.exe") if _present(fields.get(k))), None)
    if isinstance(path, str) and path.startswith("/"):
        process["file"] = {"path": path, "name": path.rsplit("/", 1)[-1], "type_id": 1}  # 1: Regular File
    parent = _pick(fields, (("name", "proc.pname"), ("cmd_line", "proc.pcmdline")))
    ppid = int64(fields.get("proc.ppid"))
    if ppid is not None:
        parent["pid"] = ppid
    if parent:
        process["parent_process"] = parent
    user = _user(fields, ("user.name",), ("user.uid",))
    if user:
        process["user"] = user
    return process or None


def _container(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The OCSF container, when the output carries what OCSF requires of one: its uid and an
    image with its uid (``container.image.id``); None otherwise, and for the host."""
    uid = fields.get("container.id")
    if not _present(uid) or uid == "host":
        return None
    image = _pick(fields, (("uid", "container.image.id"), ("name", "container.image.repository"), ("name", "container.image"),
                           ("tag", "container.image.tag")))
    if "uid" not in image:
        return None
    container: dict[str, Any] = {"uid": str(uid), "image": image}
    if _present(fields.get("container.name")):
        container["name"] = str(fields["container.name"])
    return container


def _resources(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    uid = fields.get("container.id")
    if _present(uid) and uid != "host":
        resources.append({"type": "container", "uid": str(uid), **_pick(fields, (("name", "container.name"),))})
    pod = _pick(fields, (("name", "k8s.pod.name"), ("namespace", "k8s.ns.name")))
    if "name" in pod:
        resources.append({"type": "kubernetes pod", **pod})
    target = _pick(fields, (("type", "ka.target.resource"), ("name", "ka.target.name"), ("namespace", "ka.target.namespace")))
    if "name" in target or "type" in target:
        target["type"] = f"kubernetes {target.get('type', 'object')}"
        resources.append(target)
    return resources


def _evidences(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One Evidence Artifacts object: the process (in its container, when whole) and the actor."""
    evidence: dict[str, Any] = {}
    process = _process(fields)
    if process is not None:
        container = _container(fields)
        if container is not None:
            process["container"] = container
        evidence["process"] = process
    actor = _user(fields, ("ka.user.name", "ct.user"))
    if actor is not None:
        evidence["actor"] = {"user": actor}
    return [evidence] if evidence else []


def ocsf_finding(alert: Alert) -> dict[str, Any]:
    """The alert as an OCSF 1.1.0 Detection Finding (a JSON-ready dict)."""
    fields = dict(alert.output_fields)
    time_ms = alert.time_ns // 1_000_000
    severity_id = SEVERITY.get(alert.priority, 0)
    finding: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES[severity_id],
        "status_id": STATUS_NEW,
        "status": "New",
        "time": time_ms,
        "message": alert.message,
        "finding_info": {
            "uid": alert.uuid,
            "title": alert.rule,
            "desc": alert.output,
            "types": list(alert.tags) or [alert.source],
            "created_time": time_ms,
            "analytic": {"name": alert.rule, "type_id": 1, "type": "Rule"},
        },
        "metadata": {
            "version": OCSF_VERSION,
            "product": dict(PRODUCT),
            "log_name": alert.source,
        },
        "unmapped": fields,
    }
    resources = _resources(fields)
    if resources:
        finding["resources"] = resources
    evidences = _evidences(fields)
    if evidences:
        finding["evidences"] = evidences
        if "container" in evidences[0].get("process", {}):
            finding["metadata"]["profiles"] = [CONTAINER_PROFILE]
    return finding


def ocsf_json(alert: Alert) -> bytes:
    return json_bytes(ocsf_finding(alert))
