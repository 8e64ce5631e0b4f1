"""AST -> condition text, and AST -> JSON.

``render(parse_condition(t))`` is a canonical spelling of ``t``: parsing it
again gives an equal AST (the parser flattens nested and/or, so ASTs built by
hand should be flat too). Bare words stay bare when Falco's lexer would read
them back as the same word; anything else is double-quoted with Falco's escapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.rules.ast import (
    And,
    Compare,
    FieldRef,
    FieldValue,
    ListValue,
    Literal,
    MacroRef,
    Node,
    Not,
    Or,
    Transform,
)

_BARE = re.compile(r"[^()\"'\s\x08=,]+")
_FIELD_ARG = re.compile(r"[^\[\]\"'\s\x08]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def quote(text: str) -> str:
    """A double-quoted string that Falco's lexer reads back as ``text``."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def render_literal(literal: Literal) -> str:
    if not literal.quoted and _BARE.fullmatch(literal.text):
        return literal.text
    return quote(literal.text)


def render_field(expr: FieldRef | Transform) -> str:
    if isinstance(expr, Transform):
        return f"{expr.name}({render_field(expr.operand)})"
    if expr.arg is None:
        return expr.name
    arg = expr.arg if _FIELD_ARG.fullmatch(expr.arg) else quote(expr.arg)
    return f"{expr.name}[{arg}]"


def render_value(value: Literal | ListValue | FieldValue) -> str:
    if isinstance(value, Literal):
        return render_literal(value)
    if isinstance(value, ListValue):
        return "(" + ", ".join(render_literal(item) for item in value.items) + ")"
    if isinstance(value.field, Transform):
        return render_field(value.field)  # Falco reads `tolower(f)` on the right as a field
    return f"val({render_field(value.field)})"


def render(node: Node) -> str:
    """The condition text for ``node``."""
    if isinstance(node, Compare):
        left = render_field(node.left)
        if node.right is None:
            return f"{left} {node.op}"
        return f"{left} {node.op} {render_value(node.right)}"
    if isinstance(node, MacroRef):
        return node.name
    if isinstance(node, Not):
        inner = render(node.operand)
        return f"not ({inner})" if isinstance(node.operand, (And, Or)) else f"not {inner}"
    if isinstance(node, And):
        return " and ".join(f"({render(i)})" if isinstance(i, (And, Or)) else render(i) for i in node.items)
    if isinstance(node, Or):
        return " or ".join(f"({render(i)})" if isinstance(i, Or) else render(i) for i in node.items)
    raise TypeError(f"not a condition node: {node!r}")


def _pos(node: Any) -> dict[str, int] | None:
    pos = getattr(node, "pos", None)
    return None if pos is None else {"line": pos.line, "col": pos.col}


def _field_json(expr: FieldRef | Transform) -> dict[str, Any]:
    if isinstance(expr, Transform):
        return {"type": "transform", "name": expr.name, "operand": _field_json(expr.operand), "pos": _pos(expr)}
    return {"type": "field", "name": expr.name, "arg": expr.arg, "pos": _pos(expr)}


def _value_json(value: Literal | ListValue | FieldValue | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Literal):
        return {"type": "literal", "text": value.text, "quoted": value.quoted, "pos": _pos(value)}
    if isinstance(value, ListValue):
        return {"type": "list", "items": [_value_json(item) for item in value.items], "pos": _pos(value)}
    return {"type": "field_value", "field": _field_json(value.field), "pos": _pos(value)}


def to_json(node: Node) -> dict[str, Any]:
    """A JSON-ready dict for ``node`` (what ``peregrine rules parse`` prints)."""
    if isinstance(node, Compare):
        return {"type": "compare", "left": _field_json(node.left), "op": node.op, "right": _value_json(node.right), "pos": _pos(node)}
    if isinstance(node, MacroRef):
        return {"type": "macro", "name": node.name, "pos": _pos(node)}
    if isinstance(node, Not):
        return {"type": "not", "operand": to_json(node.operand), "pos": _pos(node)}
    if isinstance(node, (And, Or)):
        kind = "and" if isinstance(node, And) else "or"
        return {"type": kind, "items": [to_json(item) for item in node.items], "pos": _pos(node)}
    raise TypeError(f"not a condition node: {node!r}")


def to_json_text(node: Node) -> str:
    return json.dumps(to_json(node), indent=2, ensure_ascii=False)
