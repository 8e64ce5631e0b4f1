"""The condition AST: frozen dataclasses, positions kept out of equality.

A condition such as ``spawned_process and proc.name in (bash, sh)`` parses to::

    And((MacroRef("spawned_process"),
         Compare(FieldRef("proc.name"), "in", ListValue((Literal("bash"), Literal("sh"))))))

Positions (``pos``) are 1-based line and column *within the condition text*;
the loader maps them to the rules file. They do not take part in ``==`` or
``hash``, so two conditions that say the same thing compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True, slots=True)
class Pos:
    line: int
    col: int


def _pos() -> Pos | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# Comparison operators, as Falco spells them. `exists` is the only unary one.
BINARY_OPERATORS = frozenset(
    {
        "=", "==", "!=", "<", "<=", ">", ">=",
        "contains", "icontains", "bcontains",
        "startswith", "bstartswith", "endswith",
        "glob", "iglob", "pmatch", "in", "intersects", "regex",
    }
)
UNARY_OPERATORS = frozenset({"exists"})
# Operators whose right-hand side is a list.
LIST_OPERATORS = frozenset({"in", "intersects", "pmatch"})
TRANSFORMERS = frozenset({"tolower", "toupper", "b64", "basename", "len"})


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field read: ``proc.name``, ``proc.aname[2]``, ``jevt.value[/stage]``.

    ``name`` is the dotted name as written (``evt.arg.mode`` stays whole; the
    field registry decides that it is ``evt.arg`` with argument ``mode``).
    ``arg`` is the text inside ``[...]``, or None.
    """

    name: str
    arg: str | None = None
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class Transform:
    """A transformer applied to a field or another transform: ``tolower(proc.name)``."""

    name: str  # one of TRANSFORMERS
    operand: "FieldExpr"
    pos: Pos | None = _pos()


FieldExpr = Union[FieldRef, Transform]


@dataclass(frozen=True, slots=True)
class Literal:
    """A value as written. Falco values are text; the compiler types them by the field.

    ``quoted`` tells a quoted string from a bare word (only a bare word can
    name a list inside a list literal).
    """

    text: str
    quoted: bool = False
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class ListValue:
    """``(a, "b", my_list)``; after list expansion it holds only literals."""

    items: tuple[Literal, ...]
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class FieldValue:
    """``val(proc.pname)``, or a transform of one: compare with another field of the same event."""

    field: FieldExpr
    pos: Pos | None = _pos()


Value = Union[Literal, ListValue, FieldValue]


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; ``right`` is None for the unary ``exists``."""

    left: FieldExpr
    op: str
    right: Value | None
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class MacroRef:
    """A bare identifier in boolean position: a macro, resolved at load."""

    name: str
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Node"
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple["Node", ...]
    pos: Pos | None = _pos()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple["Node", ...]
    pos: Pos | None = _pos()


Node = Union[Compare, MacroRef, Not, And, Or]
