"""A permissive field registry for the pipeline tests: events are flat dicts keyed by
the field as Falco prints it, every field is a string (ints where named below).
Used through PEREGRINE_REGISTRY=flat_fields:registry_for with tests/integration on
PYTHONPATH, so the worker tests do not depend on the full registries' details."""

from __future__ import annotations

from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldDef, FieldRegistry, FieldType, UnknownField

INTS = {"proc.pid", "proc.ppid", "evt.num", "evt.time", "evt.rawres"}


class FlatRegistry(FieldRegistry):
    def resolve(self, name, arg):
        if not name or not name[0].isalpha():
            raise UnknownField(name)
        kind = FieldType.INT if name in INTS else FieldType.STRING
        return FieldDef(name, kind, arg=ArgKind.OPTIONAL_INDEX if arg else ArgKind.NONE), arg


def _bind(definition: FieldDef, arg, key):
    flat = definition.name if arg is None else f"{definition.name}[{arg}]"
    return BoundField(definition, arg, key, lambda e, k=flat: e.get(k, MISSING), flat_key=flat)


REGISTRIES = {s: FlatRegistry(s, [], _bind) for s in ("syscall", "k8s_audit", "aws_cloudtrail")}


def registry_for(source: str) -> FieldRegistry:
    try:
        return REGISTRIES[source]
    except KeyError:
        raise LookupError(f"unknown source '{source}'") from None
