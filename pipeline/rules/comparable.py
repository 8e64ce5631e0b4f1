"""Which operators a field's type takes: the load-time check Falco makes before it reads a value.

libsinsp refuses a comparison whose operator does not fit the (transformed) field's type
when it compiles a rule, so the rule file does not load. The groups, as libsinsp has them:

* numbers (``int``, ``port``, ``abstime``, ``reltime``): ``= == != < <= > >= in intersects``;
* booleans: ``= == != in intersects``;
* IP addresses and networks: ``= == != in intersects``;
* text: every operator but ``bcontains`` and ``bstartswith``;
* byte buffers: ``= == != contains startswith endswith in intersects bcontains bstartswith``;
* list fields (``ka.req.pod.volumes.hostpath``, ``fd.types``): ``in intersects`` only.

``exists`` applies to every field. An ancestor field used without an index (``proc.aname``)
or a network field of either end (``fd.ip``) is one value in libsinsp, checked by its type
(Peregrine reads it as candidates, but that is not a list field).
"""

from __future__ import annotations

from pipeline.fields.registry import FieldType

_EQUALITY = frozenset({"=", "==", "!=", "in", "intersects"})
_ORDER = frozenset({"<", "<=", ">", ">="})
_TEXT_ONLY = frozenset({"icontains", "glob", "iglob", "regex", "pmatch"})
_SHARED_TEXT = frozenset({"contains", "startswith", "endswith"})
_BYTES_ONLY = frozenset({"bcontains", "bstartswith"})

NUMBER_OPERATORS = _EQUALITY | _ORDER
BOOL_OPERATORS = _EQUALITY
IP_OPERATORS = _EQUALITY
TEXT_OPERATORS = _EQUALITY | _ORDER | _SHARED_TEXT | _TEXT_ONLY
BYTES_OPERATORS = _EQUALITY | _SHARED_TEXT | _BYTES_ONLY
LIST_OPERATORS = frozenset({"in", "intersects"})

# per type: (what a rule author calls it, the operators it takes besides `exists`)
_BY_TYPE: dict[FieldType, tuple[str, frozenset[str]]] = {
    FieldType.INT: ("a number", NUMBER_OPERATORS),
    FieldType.PORT: ("a port number", NUMBER_OPERATORS),
    FieldType.ABSTIME: ("a time", NUMBER_OPERATORS),
    FieldType.RELTIME: ("a duration", NUMBER_OPERATORS),
    FieldType.BOOL: ("a boolean", BOOL_OPERATORS),
    FieldType.IPADDR: ("an IP address", IP_OPERATORS),
    FieldType.IPNET: ("an IP network", IP_OPERATORS),
    FieldType.STRING: ("text", TEXT_OPERATORS),
    FieldType.BYTES: ("a byte buffer", BYTES_OPERATORS),
}

# the order operators are listed in messages
_ORDERED = ("=", "!=", "<", "<=", ">", ">=", "contains", "icontains", "bcontains", "startswith",
            "bstartswith", "endswith", "glob", "iglob", "regex", "pmatch", "in", "intersects")


def allowed_operators(ftype: FieldType, is_list: bool) -> frozenset[str]:
    """The operators (``exists`` aside) a field of this type takes."""
    if is_list:
        return LIST_OPERATORS
    return _BY_TYPE[ftype][1]


def operator_problem(field: str, ftype: FieldType, is_list: bool, op: str) -> str | None:
    """Why ``field op ...`` does not load in Falco, or None when it does.

    ``field`` is the field as written (``proc.pid``, ``len(proc.name)``), ``is_list`` true
    for a list field (not for an ancestor or either-end field read as candidates)."""
    if op == "exists":
        return None
    allowed = allowed_operators(ftype, is_list)
    if op in allowed:
        return None
    kind = "a list" if is_list else _BY_TYPE[ftype][0]
    takes = ", ".join(o for o in _ORDERED if o in allowed) + ", exists"
    return (
        f"operator '{op}' does not apply to {field}, {kind} field (type {ftype.value}"
        f"{', list' if is_list else ''}); {kind} takes {takes}"
    )
