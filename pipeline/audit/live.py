"""Live audit: Polaris checks on the objects that K8s audit events create, update or patch.

:class:`LiveAudit` takes the checks and a Polaris config once; :meth:`LiveAudit.alerts`
takes one decoded audit event (``audit.k8s.io/v1`` ``Event``) and returns one
:class:`~pipeline.alerts.Alert` per failed check (source ``k8s_audit``).

An event is looked at only when it is a ``ResponseComplete`` ``create``/``update``/
``patch`` of a resource whose kind some check targets, without subresource (no
``pods/status``, ``deployments/scale``), not a dry run and not refused by the API
server; anything else costs a few dict lookups. The audited object is the
``responseObject`` (the stored object, after defaulting and mutating admission),
else the ``requestObject`` for create and update (a patch's requestObject is the
patch, never the object). When neither is a whole object (a ``Metadata``- or
``Request``-level event of a patch, a truncated object) the event is skipped and
counted. An object whose controlling owner is itself a workload (a ReplicaSet of a
Deployment, the Pods of a ReplicaSet, Job or DaemonSet) is skipped too: its owner
was audited when it was applied, as Polaris reports only top-level controllers.

An object's failures are reported once: an event that applies the same content
again (everything but ``metadata`` and ``status``: a controller's annotation,
a label, a finalizer, an identical re-apply) with the same failures gives no
alert and counts as ``unchanged``. A changed spec that still fails, a new
failure, or the object deleted and created again (a new uid) is reported. The
memory is the worker's own, the ``remember`` objects last seen (LRU): after a
restart, a rebalance or an eviction an unchanged object is reported once more.

Checks that relate the object to others (PodDisruptionBudget, HPA, NetworkPolicy,
the pod's ServiceAccount, the Role a binding references, custom
``additionalSchemas``) cannot be judged from one event and do not run live.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from pipeline.alerts.alert import Alert
from pipeline.alerts.falco_json import ALERT_NAMESPACE, canonical_bytes, event_time_ns
from pipeline.alerts.output import NA, clock_ns
from pipeline.audit.checks import Check
from pipeline.audit.config import AuditConfig, default_config
from pipeline.audit.evaluate import Finding, audit_objects
from pipeline.audit.manifests import WORKLOAD_KINDS
from pipeline.audit.targets import CLUSTER_SCOPED
from pipeline.rules.model import Priority

log = logging.getLogger("peregrine.audit.live")

SOURCE = "k8s_audit"
VERBS = frozenset({"create", "update", "patch"})
#: Alert priority of a failed check, by its severity.
PRIORITIES: Mapping[str, Priority] = {"danger": Priority.ERROR, "warning": Priority.WARNING}
#: Objects whose reported failures a LiveAudit remembers (about 200 bytes each), least recently seen forgotten first.
REMEMBER = 100_000
#: Lookups that read only the object itself, so they hold live.
LOCAL_LOOKUPS = frozenset({"hpaReplicaRange"})

#: API resource -> (API group, kind) of the kinds the audit understands.
RESOURCES: Mapping[str, tuple[str, str]] = {
    "pods": ("", "Pod"),
    "replicationcontrollers": ("", "ReplicationController"),
    "deployments": ("apps", "Deployment"),
    "statefulsets": ("apps", "StatefulSet"),
    "daemonsets": ("apps", "DaemonSet"),
    "replicasets": ("apps", "ReplicaSet"),
    "jobs": ("batch", "Job"),
    "cronjobs": ("batch", "CronJob"),
    "services": ("", "Service"),
    "configmaps": ("", "ConfigMap"),
    "serviceaccounts": ("", "ServiceAccount"),
    "ingresses": ("networking.k8s.io", "Ingress"),
    "networkpolicies": ("networking.k8s.io", "NetworkPolicy"),
    "roles": ("rbac.authorization.k8s.io", "Role"),
    "clusterroles": ("rbac.authorization.k8s.io", "ClusterRole"),
    "rolebindings": ("rbac.authorization.k8s.io", "RoleBinding"),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    "poddisruptionbudgets": ("policy", "PodDisruptionBudget"),
    "horizontalpodautoscalers": ("autoscaling", "HorizontalPodAutoscaler"),
}
_POD_TARGETS = ("Container", "PodSpec", "PodTemplate", "Controller")

# Outcomes counted in LiveAudit.counts
AUDITED = "audited"
NO_OBJECT = "no_object"  # neither responseObject nor requestObject is a whole object
REJECTED = "rejected"  # the API server refused the request: nothing was stored
OWNED = "owned"  # controlled by a workload that is audited itself
DRY_RUN = "dry_run"
UNCHANGED = "unchanged"  # the checks ran and found what was reported already for the same content
ERROR = "error"  # a check could not be evaluated on this object (logged)


def rule_name(check_id: str, failure_message: str) -> str:
    """The alert's rule: ``Polaris <check id>: <failure message>``."""
    return f"Polaris {check_id}: {failure_message}" if failure_message else f"Polaris {check_id}"


def is_live(check: Check) -> bool:
    """Can the check be judged from the one object an audit event carries?"""
    if check.additional:
        return False
    return check.lookup is None or check.lookup in LOCAL_LOOKUPS


def _kinds_targeted(checks: list[Check]) -> frozenset[str]:
    kinds: set[str] = set()
    for check in checks:
        if check.target in _POD_TARGETS:
            kinds |= WORKLOAD_KINDS
        else:
            kinds.add(check.target.rpartition("/")[2])
    return frozenset(kinds)


def _text(value: Any) -> str:
    return NA if value is None or value == "" else str(value)


@dataclass(frozen=True, slots=True)
class _Target:
    """The object an event applied, with what the alert says about the request."""

    obj: dict
    resource: str
    verb: str
    user: str | None
    audit_id: str | None


MAX_ALERTS_PER_OBJECT = 100


def _one_per_check(failed: list[Finding]) -> list[Finding]:
    """An object failing more than :data:`MAX_ALERTS_PER_OBJECT` times (a pod of thousands of
    containers: 156K alerts for one create of 12K) gets one alert per failed check, whose
    container names how many more containers fail it."""
    by_check: dict[str, list[Finding]] = {}
    for finding in failed:
        by_check.setdefault(finding.check, []).append(finding)
    out = []
    for findings in by_check.values():
        first = findings[0]
        if len(findings) > 1:
            first = replace(first, container=f"{first.container} and {len(findings) - 1} more containers")
        out.append(first)
    return out


class LiveAudit:
    """Polaris checks compiled once; :meth:`alerts` per decoded K8s audit event.

    ``counts`` tallies the events that passed the cheap filter by outcome
    (``audited``, ``unchanged``, ``no_object``, ``rejected``, ``owned``, ``dry_run``, ``error``);
    ``observe`` (e.g. a metrics counter) is called with each outcome too. ``remember``: how
    many objects' reported failures are kept (0: every event's failures are reported)."""

    def __init__(
        self,
        config: AuditConfig | None = None,
        *,
        hostname: str = "",
        skip_owned: bool = True,
        observe: Callable[[str], None] | None = None,
        remember: int = REMEMBER,
    ) -> None:
        config = config or default_config()
        live = tuple(c for c in config.checks if is_live(c))
        #: Active checks that do not run live (they need other objects).
        self.skipped_checks: tuple[str, ...] = tuple(sorted(c.id for c in config.active() if not is_live(c)))
        self.config = replace(config, checks=live)
        active = self.config.active()
        kinds = _kinds_targeted(active)
        self.resources: frozenset[str] = frozenset(r for r, (_, kind) in RESOURCES.items() if kind in kinds)
        self.hostname = hostname
        self.skip_owned = skip_owned
        self.observe = observe
        self.counts: Counter[str] = Counter()
        self.remember = remember
        # object (kind, namespace, name) -> digest of its uid, content and the failures reported for it
        self._reported: OrderedDict[bytes, bytes] = OrderedDict()

    @classmethod
    def from_config_file(cls, path: str | None, **kwargs: Any) -> "LiveAudit":
        """A Polaris config.yaml (None: the default checks and severities). Raises AuditError."""
        from pipeline.audit.config import load_config

        return cls(load_config(path) if path else None, **kwargs)

    def applies(self, event: Any) -> bool:
        """The cheap filter: a completed create/update/patch of an audited resource."""
        if not isinstance(event, dict) or event.get("stage") != "ResponseComplete":
            return False
        verb = event.get("verb")
        ref = event.get("objectRef")
        if verb.__class__ is not str or verb not in VERBS or not isinstance(ref, dict):
            return False
        resource = ref.get("resource")  # a list here is not a resource (and is unhashable)
        return resource.__class__ is str and resource in self.resources and not ref.get("subresource")

    def alerts(self, event: Any) -> list[Alert]:
        """One alert per failed check on the object the event applied ([] when it does not apply)."""
        if not self.applies(event):
            return []
        target, outcome = self._target(event)
        if target is None:
            return self._count(outcome, [])
        try:
            findings = audit_objects([target.obj], self.config)
        except Exception as error:  # noqa: BLE001 - an odd object or a custom check must not stop the stream
            log.warning("live audit of %s %s/%s (auditID %s) failed: %s", target.obj.get("kind"),
                        target.obj["metadata"].get("namespace", ""), target.obj["metadata"]["name"], target.audit_id, error)
            return self._count(ERROR, [])
        failed = [f for f in findings if not f.success and f.severity in PRIORITIES]
        if self.remember and not self._first_report(target.obj, failed):
            return self._count(UNCHANGED, [])
        if not failed:
            return self._count(AUDITED, [])
        digest = hashlib.sha256(canonical_bytes(event)).hexdigest()
        time_ns = event_time_ns(event, SOURCE)
        if len(failed) > MAX_ALERTS_PER_OBJECT:
            failed = _one_per_check(failed)
        return self._count(AUDITED, [self._alert(f, target, digest, time_ns) for f in failed])

    def _first_report(self, obj: dict, failed: list[Finding]) -> bool:
        """Are ``failed`` (on ``obj``, as it is now) news? False when they were reported for this
        object, with the same uid and the same content; the object is remembered either way
        (forgotten once it passes)."""
        metadata = obj["metadata"]
        if metadata.get("uid") is None and metadata.get("generateName"):
            return True  # a requestObject named by the server: its name is not the object's
        name = hashlib.blake2b(f"{obj['kind']}\x00{metadata.get('namespace') or ''}\x00{metadata['name']}".encode(),
                               digest_size=16).digest()
        reported = self._reported
        if not failed:
            reported.pop(name, None)
            return True
        content = {key: value for key, value in obj.items() if key not in ("metadata", "status")}
        state = hashlib.blake2b(canonical_bytes([metadata.get("uid"), content, sorted(f"{f.check}/{f.container or ''}" for f in failed)]),
                                digest_size=16).digest()
        if reported.get(name) == state:
            reported.move_to_end(name)
            return False
        reported[name] = state
        reported.move_to_end(name)
        if len(reported) > self.remember:
            reported.popitem(last=False)
        return True

    def _count(self, outcome: str, alerts: list[Alert]) -> list[Alert]:
        self.counts[outcome] += 1
        if self.observe is not None:
            self.observe(outcome)
        return alerts

    def _target(self, event: dict) -> tuple[_Target | None, str]:
        status = event.get("responseStatus")
        code = status.get("code") if isinstance(status, dict) else None
        if isinstance(code, int) and code >= 400:
            return None, REJECTED
        uri = event.get("requestURI")
        if isinstance(uri, str) and "dryRun=" in uri:
            return None, DRY_RUN
        ref = event["objectRef"]
        resource = ref["resource"]
        verb = event["verb"]
        obj = _whole(event.get("responseObject"), resource)
        if obj is None and verb != "patch":
            obj = _whole(event.get("requestObject"), resource)
        if obj is None:
            return None, NO_OBJECT
        obj = _completed(obj, ref, resource)
        if self.skip_owned and _controlled_by_workload(obj):
            return None, OWNED
        user = event.get("user")
        username = user.get("username") if isinstance(user, dict) else None
        audit_id = event.get("auditID")
        return _Target(obj, resource, verb, username if isinstance(username, str) else None,
                       audit_id if isinstance(audit_id, str) else None), AUDITED

    def _alert(self, finding: Finding, target: _Target, digest: str, time_ns: int) -> Alert:
        failure = finding.message  # a failed finding carries the check's failure message
        rule = rule_name(finding.check, failure)
        priority = PRIORITIES[finding.severity]
        namespace = finding.namespace or None
        message = (
            f"Polaris check {finding.check} failed: {failure} (user={_text(target.user)} verb={target.verb} "
            f"kind={finding.kind} namespace={_text(namespace)} name={finding.name} container={_text(finding.container)} "
            f"severity={finding.severity} category={finding.category})"
        )
        fields = {
            "evt.time": time_ns,
            "ka.auditid": target.audit_id,
            "ka.verb": target.verb,
            "ka.user.name": target.user,
            "ka.target.resource": target.resource,
            "ka.target.namespace": namespace,
            "ka.target.name": finding.name,
            "polaris.check": finding.check,
            "polaris.severity": finding.severity,
            "polaris.category": finding.category,
            "polaris.container": finding.container,
            "polaris.kind": finding.kind,
        }
        identity = f"polaris/{finding.check}/{finding.container or ''}\x00{digest}"
        return Alert(
            uuid=str(uuid.uuid5(ALERT_NAMESPACE, identity)),
            time_ns=time_ns,
            rule=rule,
            priority=priority,
            source=SOURCE,
            output=f"{clock_ns(time_ns)}: {priority.label} {message}",
            message=message,
            output_fields=fields,
            tags=tuple(sorted({"k8s", "polaris", finding.category.lower()})),
            hostname=self.hostname,
        )


def _whole(obj: Any, resource: str) -> dict | None:
    """``obj`` when it is a whole object of the resource's kind (not a Status, a patch,
    a Scale or a truncated object), else None."""
    if not isinstance(obj, dict):
        return None
    _, kind = RESOURCES[resource]
    if obj.get("kind", kind) != kind:
        return None
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return None
    if kind in WORKLOAD_KINDS:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return None
        if kind == "Pod":
            return obj if isinstance(spec.get("containers"), list) else None
        if kind == "CronJob":
            job = spec.get("jobTemplate")
            spec = job.get("spec") if isinstance(job, dict) else None
            if not isinstance(spec, dict):
                return None
        template = spec.get("template")
        pod = template.get("spec") if isinstance(template, dict) else None
        return obj if isinstance(pod, dict) and isinstance(pod.get("containers"), list) else None
    # other kinds: anything beyond metadata counts (rules, data, spec, roleRef...)
    return obj if any(key not in ("kind", "apiVersion", "metadata") for key in obj) else None


def _completed(obj: dict, ref: dict, resource: str) -> dict:
    """A shallow copy with kind, apiVersion, name and namespace filled from the event
    when the object lacks them (a requestObject with generateName, no namespace)."""
    group, kind = RESOURCES[resource]
    out = dict(obj)
    out.setdefault("kind", kind)
    if not out.get("apiVersion"):
        version = ref.get("apiVersion") or "v1"
        group = ref.get("apiGroup") or group
        out["apiVersion"] = f"{group}/{version}" if group else str(version)
    metadata = dict(out.get("metadata") or {})
    if not metadata.get("name"):
        metadata["name"] = str(ref.get("name") or metadata.get("generateName") or "")
    else:
        metadata["name"] = str(metadata["name"])
    if not metadata.get("namespace") and ref.get("namespace") and kind not in CLUSTER_SCOPED:
        metadata["namespace"] = str(ref["namespace"])
    out["metadata"] = metadata
    return out


def _controlled_by_workload(obj: dict) -> bool:
    owners = obj["metadata"].get("ownerReferences")
    if not isinstance(owners, list):
        return False
    return any(isinstance(o, dict) and o.get("controller") is True and o.get("kind") in WORKLOAD_KINDS for o in owners)


__all__ = ["LiveAudit", "PRIORITIES", "RESOURCES", "VERBS", "is_live", "rule_name"]
