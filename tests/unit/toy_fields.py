"""A small field registry for condition tests: flat fields (inlined by the compiler),
extractor-only fields, every field type, a list field of each kind, and fields with arguments.

Events are plain dicts; flat fields live under their own name, the others are
computed from nested data so the compiler cannot inline them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldDef, FieldRegistry, FieldType

FLAT = [
    FieldDef("evt.type", FieldType.STRING),
    FieldDef("proc.name", FieldType.STRING),
    FieldDef("proc.pname", FieldType.STRING),
    FieldDef("fd.name", FieldType.STRING),
    FieldDef("proc.pid", FieldType.INT),
    FieldDef("proc.ppid", FieldType.INT),
    FieldDef("fd.sip", FieldType.IPADDR),
    FieldDef("fd.snet", FieldType.IPNET),
    FieldDef("container.privileged", FieldType.BOOL),
    FieldDef("ka.groups", FieldType.STRING, is_list=True),
    FieldDef("ka.ips", FieldType.IPADDR, is_list=True),
    FieldDef("evt.buffer", FieldType.BYTES),
]
COMPUTED = [
    FieldDef("proc.cmdline", FieldType.STRING),  # from e["proc"]["cmdline"]
    FieldDef("user.uid", FieldType.INT),  # from e["user"]["uid"]
    FieldDef("ka.ports", FieldType.INT, is_list=True),  # from e["ports"]
    FieldDef("proc.aname", FieldType.STRING, arg=ArgKind.OPTIONAL_INDEX),  # e["anames"][i]; bare: any of [1:]
    FieldDef("proc.apid", FieldType.INT, arg=ArgKind.OPTIONAL_INDEX),  # e["apids"][i]; bare: any of [1:]
    FieldDef("evt.arg", FieldType.STRING, arg=ArgKind.KEY_OR_INDEX),  # e["args"][key]
]
# Flat but coerced as the syscall registry does (text "7" -> 7, "true" -> True, "<NA>" -> missing),
# with the native fast path (an int or bool as sent is the value) a compiler may inline.
COERCED = [
    FieldDef("fd.num", FieldType.INT),
    FieldDef("evt.is_open_read", FieldType.BOOL),
    FieldDef("fd.nameraw", FieldType.STRING),  # text as is but "<NA>" is missing; 5 -> "5"
]


def _nested(event: Any, *path: str) -> Any:
    value = event
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return MISSING if value is None else value


def _typed(value: Any, ftype: FieldType, is_list: bool) -> Any:
    if value is MISSING:
        return MISSING
    if is_list:
        return value if isinstance(value, list) else MISSING
    if ftype is FieldType.INT:
        return value if type(value) is int else MISSING
    return value if isinstance(value, str) else MISSING


def _bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    name = definition.name
    if name in {f.name for f in COERCED}:
        from pipeline.fields.coerce import NA, to_bool, to_int, to_str

        coerce = {FieldType.INT: to_int, FieldType.BOOL: to_bool, FieldType.STRING: to_str}[definition.type]
        native = {FieldType.INT: int, FieldType.BOOL: bool, FieldType.STRING: str}[definition.type]

        def coerced(e: Any, _k=name, _c=coerce) -> Any:
            v = e.get(_k)
            return MISSING if v is None else _c(v)

        return BoundField(
            definition, arg, key, coerced, native_key=name, native_class=native, native_except=NA if native is str else None
        )
    if name in {f.name for f in FLAT}:
        return BoundField(definition, arg, key, lambda e, k=name: e.get(k, MISSING), flat_key=name)
    if name == "proc.cmdline":
        extract = lambda e: _typed(_nested(e, "proc", "cmdline"), definition.type, False)  # noqa: E731
    elif name == "user.uid":
        extract = lambda e: _typed(_nested(e, "user", "uid"), definition.type, False)  # noqa: E731
    elif name == "ka.ports":
        extract = lambda e: _typed(_nested(e, "ports"), definition.type, True)  # noqa: E731
    elif name in ("proc.aname", "proc.apid"):
        # like libsinsp: [0] the process, [1] its parent...; no index: any ancestor (parent up)
        index = int(arg) if arg is not None else None
        element = str if name == "proc.aname" else int
        where = "anames" if name == "proc.aname" else "apids"

        def extract(e: Any) -> Any:
            values = _nested(e, where)
            if not isinstance(values, list):
                return MISSING
            if index is None:
                return [v for v in values[1:] if type(v) is element] or MISSING
            return values[index] if 0 <= index < len(values) and type(values[index]) is element else MISSING

        if index is None:
            return BoundField(replace(definition, is_list=True, any_of=True), arg, key, extract)
    else:  # evt.arg
        extract = lambda e: _typed(_nested(e, "args", arg or ""), definition.type, False)  # noqa: E731
    return BoundField(definition, arg, key, extract)


def toy_registry() -> FieldRegistry:
    return FieldRegistry("toy", FLAT + COMPUTED + COERCED, _bind)
