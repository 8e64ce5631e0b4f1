"""Field registries for the correlation tests: events are flat dicts keyed by the
field as Falco prints it (``evt.arg.mode`` for ``evt.arg[mode]``), which is
the shape of the JSON events under tests/data/correlation/."""

from __future__ import annotations

from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldDef, FieldRegistry, FieldType

SYSCALL = [
    FieldDef("evt.time", FieldType.ABSTIME),
    FieldDef("evt.num", FieldType.INT),
    FieldDef("evt.type", FieldType.STRING),
    FieldDef("evt.dir", FieldType.STRING),
    FieldDef("evt.is_open_write", FieldType.BOOL),
    FieldDef("evt.arg", FieldType.STRING, arg=ArgKind.KEY_OR_INDEX),
    FieldDef("proc.name", FieldType.STRING),
    FieldDef("proc.pname", FieldType.STRING),
    FieldDef("proc.cmdline", FieldType.STRING),
    FieldDef("proc.exepath", FieldType.STRING),
    FieldDef("proc.pid", FieldType.INT),
    FieldDef("proc.ppid", FieldType.INT),
    FieldDef("fd.name", FieldType.STRING),
    FieldDef("fd.sip", FieldType.IPADDR),
    FieldDef("fd.sport", FieldType.INT),
    FieldDef("fd.l4proto", FieldType.STRING),
    FieldDef("container.id", FieldType.STRING),
    FieldDef("user.name", FieldType.STRING),
]
K8S_AUDIT = [
    FieldDef("evt.time", FieldType.ABSTIME),
    FieldDef("ka.auditid", FieldType.STRING),
    FieldDef("ka.verb", FieldType.STRING),
    FieldDef("ka.user.name", FieldType.STRING),
    FieldDef("ka.target.resource", FieldType.STRING),
    FieldDef("ka.target.subresource", FieldType.STRING),
    FieldDef("ka.target.resource_subresource", FieldType.STRING),
    FieldDef("ka.target.name", FieldType.STRING),
    FieldDef("ka.target.namespace", FieldType.STRING),
    FieldDef("ka.response.code", FieldType.STRING),
    FieldDef("ka.auth.decision", FieldType.STRING),
    FieldDef("ka.auth.reason", FieldType.STRING),
    FieldDef("ka.uri", FieldType.STRING),
    FieldDef("ka.uri.param", FieldType.STRING, arg=ArgKind.REQUIRED_KEY),
    FieldDef("ka.req.binding.role", FieldType.STRING),
    FieldDef("ka.req.binding.subjects", FieldType.STRING, is_list=True),
]


def _bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    flat = definition.name if arg is None else f"{definition.name}.{arg}"
    if arg is None:
        return BoundField(definition, arg, key, lambda e, k=flat: e.get(k, MISSING), flat_key=flat)
    return BoundField(definition, arg, key, lambda e, k=flat: e.get(k, MISSING))


REGISTRIES = {
    "syscall": FieldRegistry("syscall", SYSCALL, _bind),
    "k8s_audit": FieldRegistry("k8s_audit", K8S_AUDIT, _bind),
}


def registry_for(source: str) -> FieldRegistry:
    try:
        return REGISTRIES[source]
    except KeyError:
        raise LookupError(f"unknown source '{source}'") from None
