"""Declaring a source's fields as a compact table, and a registry that knows
which fields take an *optional* key (``proc.env`` / ``proc.env[HOME]``).

The table form keeps each source module a readable list: one field a line,
``name  TYPE  flags``, where flags are ``list`` (list-valued), ``idx?``
(optional numeric index), ``idx`` (required index), ``key`` (required key),
``key?`` (optional key or index), ``keyidx`` (key or index).
"""

from __future__ import annotations

from typing import Callable

from pipeline.fields.registry import ArgKind, BoundField, FieldDef, FieldRegistry, FieldType, UnknownField

_TYPES = {
    "STRING": FieldType.STRING,
    "INT": FieldType.INT,
    "PORT": FieldType.PORT,
    "BOOL": FieldType.BOOL,
    "IPADDR": FieldType.IPADDR,
    "IPNET": FieldType.IPNET,
    "ABSTIME": FieldType.ABSTIME,
    "RELTIME": FieldType.RELTIME,
    "BYTES": FieldType.BYTES,
}
_ARGS = {
    "idx?": ArgKind.OPTIONAL_INDEX,
    "idx": ArgKind.REQUIRED_INDEX,
    "key": ArgKind.REQUIRED_KEY,
    "key?": ArgKind.KEY_OR_INDEX,
    "keyidx": ArgKind.KEY_OR_INDEX,
    "ptr": ArgKind.JSON_POINTER,
}


def parse_table(table: str) -> tuple[list[FieldDef], frozenset[str]]:
    """FieldDefs from a table, plus the names whose argument may be omitted (``key?``)."""
    fields: list[FieldDef] = []
    optional: set[str] = set()
    for raw in table.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, type_name, *flags = line.split()
        arg = ArgKind.NONE
        for flag in flags:
            if flag in _ARGS:
                arg = _ARGS[flag]
            if flag == "key?":
                optional.add(name)
        fields.append(FieldDef(name, _TYPES[type_name], is_list="list" in flags, arg=arg))
    return fields, frozenset(optional)


class SourceRegistry(FieldRegistry):
    """A FieldRegistry where some key-taking fields may also be used bare."""

    def __init__(
        self,
        source: str,
        fields: list[FieldDef],
        binder: Callable[[FieldDef, str | None, str], BoundField],
        optional_arg: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(source, fields, binder)
        self.optional_arg = optional_arg

    def resolve(self, name: str, arg: str | None) -> tuple[FieldDef, str | None]:
        if arg is None and name in self.optional_arg:
            return self._fields[name], None
        if arg is not None and arg == "" :
            raise UnknownField(f"field '{name}' has an empty argument '{name}[]'")
        return super().resolve(name, arg)
