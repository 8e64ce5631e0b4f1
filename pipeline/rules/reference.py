"""A slow, plain tree-walking evaluator of conditions: the definition of what they mean.

It shares nothing with the compiler's generated code except field extraction
(``registry.bind(...).extract``): no folding, no memo, no inlining, and its own
operator implementations. Property tests check that compiled conditions agree
with it; the engine falls back to it for an event that makes generated code
raise (a value of an unexpected type), because it never raises on odd values.

Semantics (Falco's):

* a missing field (absent, ``None``, or an empty list) makes every comparison
  on it false, ``!=`` included; ``not`` turns that into true; ``exists`` is
  true iff the field is present;
* literals take the field's type: numbers for INT/ABSTIME/RELTIME, true/false
  for BOOL, addresses and CIDR networks for IP fields; text operators
  (contains, startswith, glob...) see numbers as their decimal text;
* on a list field, ``in`` means every element is in the set, ``intersects``
  that one is, ``=`` and the text operators that one element matches, ``!=``
  that none equals;
* on an any-of field (an ancestor field without index, ``proc.aname``), the
  comparison is made as if the field were a plain value, once per candidate
  (ancestor), and holds when it holds for one: ``proc.aname in (a, b)`` is
  "some ancestor is a or b", ``proc.aname != bash`` "some ancestor is not bash";
* ``glob`` is fnmatch(3) with no flags (``*`` crosses ``/``, pipeline/rules/glob.py), ``iglob`` the
  same ignoring case; ``regex`` must match the whole value (RE2, POSIX syntax); ``pmatch``
  matches a path equal to, or under, one of the listed paths;
* ``val(f)`` compares with another field of the same event; a missing side is no match;
  an any-of field inside ``val()`` is the process's own value (``proc.aname[0]``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any, Mapping

import re2

from pipeline.fields.registry import MISSING, BoundField, FieldRegistry, FieldType
from pipeline.rules.ast import And, Compare, FieldRef, FieldValue, ListValue, Literal, MacroRef, Node, Not, Or, Transform
from pipeline.rules.glob import glob_match
from pipeline.rules.operators import REGEX_OPTIONS, LiteralTypeError, parse_port

_NUMERIC = (FieldType.INT, FieldType.PORT, FieldType.ABSTIME, FieldType.RELTIME)
_IP = (FieldType.IPADDR, FieldType.IPNET)
_TEXT_OPS = ("contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex", "pmatch")


class ReferenceEvaluator:
    """Evaluates ASTs against events for one registry, binding fields on first use."""

    def __init__(self, registry: FieldRegistry, macros: Mapping[str, Node]) -> None:
        self.registry = registry
        self.macros = macros
        self._bound: dict[tuple[str, str | None], BoundField] = {}

    # -- values

    def _bind(self, ref: FieldRef) -> BoundField:
        key = (ref.name, ref.arg)
        if key not in self._bound:
            self._bound[key] = self.registry.bind(ref.name, ref.arg)
        return self._bound[key]

    def field_type(self, expr: FieldRef | Transform) -> tuple[FieldType, bool, bool]:
        """(type, is a list, is an any-of list of candidates)."""
        if isinstance(expr, FieldRef):
            bound = self._bind(expr)
            return bound.type, bound.is_list, bound.is_list and bound.any_of
        _, is_list, any_of = self.field_type(expr.operand)
        if expr.name == "len":
            return FieldType.INT, any_of, any_of
        return FieldType.STRING, is_list, any_of

    def value(self, expr: FieldRef | Transform, event: Any) -> Any:
        """The value, or None when missing (MISSING, None and [] are all 'missing')."""
        if isinstance(expr, FieldRef):
            raw = self._bind(expr).extract(event)
        else:
            inner = self.value(expr.operand, event)
            if self.field_type(expr.operand)[2] and isinstance(inner, list):
                raw = [out for out in (_transform(expr.name, item) for item in inner) if out is not None]
            else:
                raw = _transform(expr.name, inner)
        if raw is MISSING or raw is None or (isinstance(raw, list) and len(raw) == 0):
            return None
        return raw

    def _as_extracted(self, expr: FieldRef | Transform) -> FieldRef | Transform:
        """``val(proc.aname)`` reads the process itself (``proc.aname[0]``): libsinsp extracts an
        ancestor field without index taking no step up."""
        if isinstance(expr, FieldRef):
            return FieldRef(expr.name, "0", expr.pos) if self.field_type(expr)[2] else expr
        return Transform(expr.name, self._as_extracted(expr.operand), expr.pos)

    # -- conditions

    def evaluate(self, node: Node, event: Any) -> bool:
        if isinstance(node, And):
            return all(self.evaluate(item, event) for item in node.items)
        if isinstance(node, Or):
            return any(self.evaluate(item, event) for item in node.items)
        if isinstance(node, Not):
            return not self.evaluate(node.operand, event)
        if isinstance(node, MacroRef):
            return self.evaluate(self.macros[node.name], event)
        if isinstance(node, Compare):
            return self._compare(node, event)
        raise TypeError(f"not a condition node: {node!r}")

    def _compare(self, node: Compare, event: Any) -> bool:
        ftype, is_list, any_of = self.field_type(node.left)
        value = self.value(node.left, event)
        if node.op == "exists":
            return value is not None
        if value is None:
            return False
        if any_of:
            return any(self._compare_value(node, ftype, False, candidate, event) for candidate in value)
        return self._compare_value(node, ftype, is_list, value, event)

    def _compare_value(self, node: Compare, ftype: FieldType, is_list: bool, value: Any, event: Any) -> bool:
        right = node.right
        if isinstance(right, FieldValue):
            other = self.value(self._as_extracted(right.field), event)
            return other is not None and _compare_fields(node.op, value, other)
        if isinstance(right, Literal):
            texts = [right.text]
        elif isinstance(right, ListValue):
            texts = [item.text for item in right.items]
        else:
            return False
        elements = value if is_list else [value]
        op = node.op
        if op in ("in", "intersects") and is_list:
            hits = [any(_equals(ftype, element, text) for text in texts) for element in elements]
            return all(hits) if op == "in" else any(hits)
        if op in ("in", "intersects", "pmatch"):
            return any(_check(ftype, op, element, text) for element in elements for text in texts)
        if op == "!=" and is_list:
            return not any(_equals(ftype, element, texts[0]) for element in elements)
        return any(_check(ftype, op, element, texts[0]) for element in elements)


def evaluate(node: Node, event: Any, registry: FieldRegistry, macros: Mapping[str, Node]) -> bool:
    """One-shot convenience: ``node`` on ``event``."""
    return ReferenceEvaluator(registry, macros).evaluate(node, event)


# ---------------------------------------------------------------- operators, spelled out


def _transform(name: str, value: Any) -> Any:
    if value is MISSING or value is None:
        return None
    if isinstance(value, list) and name != "len":
        out = []
        for item in value:
            result = _transform(name, item)
            if result is not None:
                out.append(result)
        return out
    if name == "len":
        return len(value) if isinstance(value, (str, list, bytes)) else None
    if not isinstance(value, str):
        return None
    if name == "tolower":
        return value.lower()
    if name == "toupper":
        return value.upper()
    if name == "basename":
        return value.split("/")[-1]
    if name == "b64":
        try:
            return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return None
    raise ValueError(f"unknown transformer {name}")


def _as_int(text: str) -> int | None:
    text = text.strip()
    try:
        negative = text.startswith("-")
        body = text.lstrip("+-")
        if body.lower().startswith("0x"):
            number = int(body[2:], 16)
        else:
            number = int(body, 10)
        return -number if negative else number
    except ValueError:
        return None


def _network(text: str) -> Any:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _number(ftype: FieldType, text: str) -> int | None:
    """A number literal; a port's may name a service (``http``)."""
    if ftype is FieldType.PORT:
        try:
            return parse_port(text)
        except LiteralTypeError:
            return None
    return _as_int(text)


def _equals(ftype: FieldType, value: Any, text: str) -> bool:
    if ftype in _NUMERIC:
        number = _number(ftype, text)
        return type(value) is int and number is not None and value == number
    if ftype is FieldType.BOOL:
        return type(value) is bool and text.strip().lower() == ("true" if value else "false")
    if ftype in _IP:
        return _ip_inside(value, text) is True
    if ftype is FieldType.BYTES and type(value) is bytes:
        return value == text.encode("utf-8", errors="surrogateescape")
    return type(value) is str and value == text


def _ip_inside(value: Any, text: str) -> bool | None:
    if not isinstance(value, str):
        return None
    mine, theirs = _network(value), _network(text)
    if mine is None or theirs is None:
        return None
    return mine.version == theirs.version and mine.subnet_of(theirs)


def _check(ftype: FieldType, op: str, value: Any, text: str) -> bool:
    """``value op text`` for one (non-list) value of a field of type ``ftype``."""
    if op in ("=", "==", "in", "intersects"):
        return _equals(ftype, value, text)
    if op == "!=":
        if ftype in _IP:
            return _ip_inside(value, text) is False
        if ftype in _NUMERIC:
            return type(value) is int and _number(ftype, text) is not None and value != _number(ftype, text)
        if ftype is FieldType.BOOL:
            return type(value) is bool and not _equals(ftype, value, text)
        if ftype is FieldType.BYTES and type(value) is bytes:
            return not _equals(ftype, value, text)
        return type(value) is str and value != text
    if op in ("<", "<=", ">", ">="):
        if ftype in _NUMERIC:
            other: Any = _number(ftype, text)
            if type(value) is not int or other is None:
                return False
        elif ftype is FieldType.STRING and type(value) is str:
            other = text
        else:
            return False
        if op == "<":
            return value < other
        if op == "<=":
            return value <= other
        if op == ">":
            return value > other
        return value >= other
    if op in ("bcontains", "bstartswith"):
        data = value if isinstance(value, bytes) else value.encode("utf-8", errors="surrogateescape") if isinstance(value, str) else None
        try:
            needle = bytes.fromhex(text)
        except ValueError:
            return False
        if data is None:
            return False
        return needle in data if op == "bcontains" else data[: len(needle)] == needle
    if type(value) is bytes and op in ("contains", "startswith", "endswith"):  # a byte buffer: its bytes
        needle = text.encode("utf-8", errors="surrogateescape")
        return needle in value if op == "contains" else value.startswith(needle) if op == "startswith" else value.endswith(needle)
    subject = _as_text(value)
    if subject is None:
        return False
    if op == "contains":
        return text in subject
    if op == "icontains":
        return text.lower() in subject.lower()
    if op == "startswith":
        return subject[: len(text)] == text
    if op == "endswith":
        return len(subject) >= len(text) and subject[len(subject) - len(text) :] == text
    if op == "glob":
        return glob_match(text, subject)
    if op == "iglob":
        return glob_match(text.lower(), subject.lower())
    if op == "regex":
        return re2.compile(text, REGEX_OPTIONS).fullmatch(subject) is not None
    if op == "pmatch":
        root = text.rstrip("/")
        if any(c in root for c in "*?["):  # a glob: component by component, the value may go deeper
            pattern, parts = root.split("/"), subject.split("/")
            return len(parts) >= len(pattern) and all(glob_match(g, p) for p, g in zip(parts, pattern))
        if root == "":
            return subject.startswith("/")
        return subject == root or subject.startswith(root + "/")
    raise ValueError(f"unknown operator {op}")


def _compare_fields(op: str, left: Any, right: Any) -> bool:
    """``left op val(right)``, both values taken from the event (neither missing)."""
    if op in ("in", "intersects"):
        pool = right if isinstance(right, list) else [right]
        lefts = left if isinstance(left, list) else [left]
        found = [any(type(item) is type(other) and item == other for other in pool) for item in lefts]
        if isinstance(left, list):
            return all(found) if op == "in" else any(found)
        return found[0]
    if isinstance(left, list):
        if isinstance(right, list):
            return False
        if op == "!=":
            return not any(type(item) is type(right) and item == right for item in left)
        return any(_compare_fields(op, item, right) for item in left)
    if isinstance(right, list):
        return False
    if op in ("=", "=="):
        return type(left) is type(right) and left == right
    if op == "!=":
        return type(left) is type(right) and left != right
    if op in ("<", "<=", ">", ">="):
        if type(left) is not type(right) or type(left) not in (int, str):
            return False
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    lt, rt = _as_text(left), _as_text(right)
    if lt is None or rt is None:
        return False
    if op == "contains":
        return rt in lt
    if op == "icontains":
        return rt.lower() in lt.lower()
    if op == "startswith":
        return lt.startswith(rt)
    if op == "endswith":
        return lt.endswith(rt)
    if op == "glob":
        return glob_match(rt, lt)
    if op == "iglob":
        return glob_match(rt.lower(), lt.lower())
    return False
