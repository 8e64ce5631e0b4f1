"""Field extraction for syscall events: flat JSON objects keyed by Falco field names.

An event is shaped like Falco's ``output_fields``: ``{"evt.type": "openat",
"proc.name": "cat", "proc.aname[2]": "bash", "evt.arg.flags": "O_RDONLY"}``.
A field is read from the key Falco prints it under, with a few fallbacks a
collector's event may need: ``proc.aname[1]`` is ``proc.pname`` when only
that is sent, ``proc.aname`` (no index) is every ancestor we have (an
any-of value: a comparison holds when it holds for one ancestor),
``evt.arg[mode]`` reads ``evt.arg.mode``, ``proc.env[HOME]`` is looked up in
``proc.env``; the network fields libsinsp computes and never prints
(``fd.ip``, ``fd.net``, ``fd.lport``...) come from the connection's ends
(pipeline/fields/syscall_net.py). Numbers and booleans Falco prints as text are coerced; a typed
field holding ``<NA>`` or a wrong shape is MISSING. Plain string fields keep
their value as is (``<NA>`` included) so the compiler can inline the lookup.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from pipeline.fields.coerce import NA, coercer, ns_to_iso8601, to_int, to_str, to_time_ns
from pipeline.fields.declare import SourceRegistry, parse_table
from pipeline.fields.registry import MISSING, BoundField, FieldDef, FieldType
from pipeline.fields.syscall_net import NETWORK_FIELDS, bind_network_field
from pipeline.fields.syscall_table import TABLE
from pipeline.rules.glob import glob_match

SOURCE = "syscall"
MAX_ANCESTORS = 16

# proc.aname[0] is the process itself, [1] its parent: the keys to fall back on.
_ANCESTOR_FIELDS = {
    "proc.aname": ("proc.name", "proc.pname"),
    "proc.aexe": ("proc.exe", "proc.pexe"),
    "proc.aexepath": ("proc.exepath", "proc.pexepath"),
    "proc.acmdline": ("proc.cmdline", "proc.pcmdline"),
    "proc.apid": ("proc.pid", "proc.ppid"),
}
_MOUNT_PARTS = {"container.mount.source": 0, "container.mount.dest": 1, "container.mount.mode": 2, "container.mount.rdwr": 3, "container.mount.propagation": 4}


def _first(keys: tuple[str, ...], coerce):
    """Extractor: the first key present (not None), coerced."""
    if len(keys) == 1:
        only = keys[0]

        def one(e: Any, _k=only, _c=coerce, _m=MISSING) -> Any:
            v = e.get(_k)
            return _m if v is None else _c(v)

        return one

    def first(e: Any, _keys=keys, _c=coerce, _m=MISSING) -> Any:
        for k in _keys:
            v = e.get(k)
            if v is not None:
                return _c(v)
        return _m

    return first


# Values that coercion returns unchanged: the fast path a compiler may inline (see BoundField).
# Text is returned unchanged too, except Falco's "<NA>" (missing).
_NATIVE = {FieldType.INT: int, FieldType.PORT: int, FieldType.ABSTIME: int, FieldType.RELTIME: int, FieldType.BOOL: bool, FieldType.STRING: str}


def _bound_first(definition: FieldDef, arg: str | None, key: str, keys: tuple[str, ...], coerce) -> BoundField:
    """A BoundField reading the first of ``keys`` present; for an int, bool or text field, with
    the promise that a value of that very class under ``keys[0]`` (text: other than "<NA>") is
    the field's value."""
    native = None if definition.is_list else _NATIVE.get(definition.type)
    return BoundField(
        definition, arg, key, _first(keys, coerce),
        native_key=keys[0] if native is not None else None, native_class=native,
        native_except=NA if native is str else None,
    )


def _ancestors(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    name = definition.name
    own, parent = _ANCESTOR_FIELDS[name]
    one = coercer(definition.type, False)
    if arg is not None:
        index = int(arg)
        keys = (key,) + ((own,) if index == 0 else (parent,) if index == 1 else ())
        return _bound_first(definition, arg, key, keys, one)
    # No index: every ancestor from the parent up, as candidates (libsinsp's
    # compare_full_aname/apid/...: a comparison matches when one ancestor's does).
    listed = replace(definition, is_list=True, any_of=True)
    numbered = tuple(f"{name}[{i}]" for i in range(1, MAX_ANCESTORS + 1))

    def every(e: Any, _name=name, _parent=parent, _keys=numbered, _c=one, _m=MISSING) -> Any:
        whole = e.get(_name)
        if whole.__class__ is list:
            values = [x for x in map(_c, whole) if x is not _m]
            return values or _m
        values = []
        for i, k in enumerate(_keys):
            v = e.get(k)
            if v is None and i == 0:
                v = e.get(_parent)
            if v is None:
                break
            v = _c(v)
            if v is not _m:
                values.append(v)
        return values or _m

    return BoundField(listed, None, key, every)


def _event_arg(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    base = definition.name
    coerce = coercer(definition.type, False)
    if arg is not None and arg.isdigit():
        keys: tuple[str, ...] = (key,)
    else:
        keys = (f"{base}.{arg}", key)  # evt.rawarg never falls back to evt.arg's formatted text
    return _bound_first(definition, arg, key, keys, coerce)


def _env_entries(env: Any) -> list[str]:
    if env.__class__ is list:
        return [x for x in env if x.__class__ is str]
    if env.__class__ is str:
        return env.split()
    return []


def _proc_env(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    if arg is None:

        def whole(e: Any, _m=MISSING) -> Any:
            env = e.get("proc.env")
            if env.__class__ is list:
                return " ".join(x for x in env if x.__class__ is str)
            if env.__class__ is dict:
                return " ".join(f"{k}={v}" for k, v in env.items())
            return _m if env is None else to_str(env)

        return BoundField(definition, None, key, whole)
    prefix = arg + "="

    def variable(e: Any, _key=key, _arg=arg, _prefix=prefix, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is not None:
            return to_str(v)
        env = e.get("proc.env")
        if env.__class__ is dict:
            found = env.get(_arg)
            return _m if found is None else to_str(found)
        for entry in _env_entries(env):
            if entry.startswith(_prefix):
                return entry[len(_prefix) :]
        return _m

    return BoundField(definition, arg, key, variable)


def _mount_part(value: Any) -> str:
    """One part of a mount given as an object: libsinsp prints rdwr as ``true``/``false``."""
    if value is None:
        return ""
    if value.__class__ is bool:
        return "true" if value else "false"
    return str(value)


def _mount_rows(mounts: Any) -> list[list[str]]:
    """``container.mounts`` as Falco prints it: ``src:dest:mode:rdwr:propagation,...``."""
    if mounts.__class__ is str:
        return [row.split(":") for row in mounts.split(",") if row]
    if mounts.__class__ is list:
        rows = []
        for m in mounts:
            if m.__class__ is dict:
                rows.append([_mount_part(m.get(k)) for k in ("source", "dest", "mode", "rdwr", "propagation")])
            elif m.__class__ is str:
                rows.append(m.split(":"))
        return rows
    return []


def _container_mount(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    """``container.mount.dest[/var/run/docker.sock]``: the part of the mount whose
    *other* end matches the argument (a glob); ``[N]`` picks the N-th mount.

    No value (MISSING) when no mount matches, the index is past the last mount or the
    container has no mounts, as libsinsp's ``sinsp_filter_check_container::extract``
    returns NULL there (the container plugin sets no value either). A comparison on it is
    then false and ``not`` makes it true: Falco's sandbox macro ``sensitive_mount``
    (``not container.mount.dest[/proc*] in ("<NA>","N/A") or ...``) holds for such a
    container in Falco too. ``<NA>`` is only what Falco *prints* for a missing value, so
    that text under the field's own key is read as no value too."""
    part = _MOUNT_PARTS.get(definition.name)
    match_on = 1 if part == 0 else 0

    def mount(e: Any, _key=key, _arg=arg, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is not None:
            return to_str(v)
        rows = _mount_rows(e.get("container.mounts"))
        if _arg.isdigit():
            index = int(_arg)
            if index >= len(rows):
                return _m
            row = rows[index]
            return ":".join(row) if part is None else (row[part] if part < len(row) else _m)
        for row in rows:
            if len(row) > max(match_on, part or 0) and glob_match(_arg, row[match_on]):
                return ":".join(row) if part is None else row[part]
        return _m

    return BoundField(definition, arg, key, mount)


def _fd_types(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    def types(e: Any, _key=key, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is None:
            return _m
        if v.__class__ is str:  # Falco prints "(ipv4,file)"
            return [t for t in v.strip("()").split(",") if t]
        return [t for t in v if t.__class__ is str] if v.__class__ is list else _m

    return BoundField(definition, arg, key, types)


def _evt_time(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    return _bound_first(definition, arg, key, (key, "evt.rawtime" if key == "evt.time" else "evt.time"), to_time_ns)


def _evt_time_iso(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    def iso(e: Any, _m=MISSING) -> Any:
        v = e.get("evt.time.iso8601")
        if v.__class__ is str:
            return v
        for k in ("evt.time", "evt.rawtime"):
            ns = e.get(k)
            if ns is not None:
                ns = to_time_ns(ns)
                return _m if ns is _m else ns_to_iso8601(ns)
        return _m

    return BoundField(definition, arg, key, iso)


_SPECIAL = {
    **{name: _ancestors for name in _ANCESTOR_FIELDS},
    "evt.arg": _event_arg,
    "evt.rawarg": _event_arg,
    "proc.env": _proc_env,
    "fd.types": _fd_types,
    "evt.time": _evt_time,
    "evt.rawtime": _evt_time,
    "evt.time.iso8601": _evt_time_iso,
    **{name: _container_mount for name in ("container.mount", *_MOUNT_PARTS)},
    **{name: bind_network_field for name in NETWORK_FIELDS},
}


def bind_flat(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    """The default binding: the value under the field's printed key, coerced.

    Shared by every source whose events (or unwrapped Falco alerts) are flat."""
    if definition.type is FieldType.STRING and not definition.is_list:
        if arg is None or definition.name != key:
            return BoundField(definition, arg, key, lambda e, _k=key, _m=MISSING: e.get(_k, _m), flat_key=key)
    return _bound_first(definition, arg, key, (key,), coercer(definition.type, definition.is_list))


def _bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    special = _SPECIAL.get(definition.name)
    if special is not None and not (definition.name == "fd.types" and arg is not None):
        return special(definition, arg, key)
    if definition.name == "fd.types":  # fd.types[N]: the type of fd N, a single string
        return bind_flat(replace(definition, is_list=False), arg, key)
    return bind_flat(definition, arg, key)


@lru_cache(maxsize=1)
def registry() -> SourceRegistry:
    fields, optional = parse_table(TABLE)
    return SourceRegistry(SOURCE, fields, _bind, optional)


__all__ = ["registry", "bind_flat", "SOURCE", "to_int"]
