"""List expansion, macro inlining and other walks over a condition AST.

Falco expands lists by text substitution before parsing; we do it on the
AST, which gives the same result for every real rule and cannot corrupt a
quoted string that happens to contain a list's name: inside a list literal
``( ... )`` a *bare* word naming a list becomes that list's items (whose own
bare items may name lists, expanded in turn); a quoted word never does.

Macro inlining replaces each :class:`MacroRef` with the macro's (already
resolved) AST. Nodes are immutable, so an inlined macro is shared, not copied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

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


class ReferenceLoop(ValueError):
    """Lists or macros that refer to each other in a circle."""


# How many terms (comparisons, and/or/not, list items) a condition may have once its lists are
# expanded and its macros inlined. Falco's own rules have at most about 1,300; lists or macros
# that each name the one before twice double at every level, 2^40 after forty.
MAX_EXPANDED_TERMS = 1_000_000


class ExpansionTooLarge(ValueError):
    """Lists that expand past :data:`MAX_EXPANDED_TERMS` items; ``literal`` is the name that did."""

    def __init__(self, literal: Literal) -> None:
        super().__init__(literal.text)
        self.literal = literal


def literal_from_item(item: str) -> Literal:
    """A list item as Falco's parser reads it once substituted into a condition:
    an item already in quotes is that string, an item with a space is quoted
    (Falco's ``quote_item``), anything else is a bare word."""
    if len(item) >= 2 and item[0] in "\"'" and item[-1] == item[0]:
        return Literal(item[1:-1], True)
    return Literal(item, " " in item)


def expand_list_items(
    items: tuple[str, ...] | list[str],
    lookup: Callable[[str], tuple[str, ...] | None],
) -> list[str]:
    """Items with each item that names a list (per ``lookup``) replaced by that list's items."""
    out: list[str] = []
    for item in items:
        found = lookup(item)
        if found is None:
            out.append(item)
        else:
            out.extend(found)
    return out


def expand_lists(
    node: Node,
    lists: Mapping[str, tuple[str, ...]],
    used: set[str],
    on_undefined: Callable[[Literal], None] | None = None,
    max_items: int = MAX_EXPANDED_TERMS,
) -> Node:
    """``node`` with list names inside list literals replaced by the lists' items.

    ``lists`` maps a list name to its items, already expanded. Names used are
    added to ``used``. ``on_undefined`` is called for ``field in name`` written
    without parentheses when ``name`` is not a list (the one case where a
    bare word is surely meant as a list). Raises ExpansionTooLarge when the
    names expand to more than ``max_items`` items in all.
    """

    budget = [max_items]

    def items_of(name: str, named: Literal) -> list[Literal]:
        # An item that is itself a bare list name expands too, as Falco's repeated
        # text substitution does; a list never expands inside itself. Without recursion: a
        # chain of thousands of lists each naming the next is as deep.
        out: list[Literal] = []
        work = [(iter(lists[name]), (name,))]
        while work:
            items, stack = work[-1]
            item = next(items, None)
            if item is None:
                work.pop()
                continue
            literal = literal_from_item(item)
            if not literal.quoted and literal.text in lists and literal.text not in stack:
                used.add(literal.text)
                work.append((iter(lists[literal.text]), stack + (literal.text,)))
                continue
            out.append(literal)
            budget[0] -= 1
            if budget[0] < 0:
                raise ExpansionTooLarge(named)
        return out

    def expand_value(value):
        if isinstance(value, ListValue):
            out: list[Literal] = []
            changed = False
            for literal in value.items:
                items = None if literal.quoted else lists.get(literal.text)
                if items is None:
                    out.append(literal)
                    if (
                        on_undefined is not None
                        and not literal.quoted
                        and len(value.items) == 1
                        and value.pos is not None
                        and value.pos == literal.pos
                    ):
                        on_undefined(literal)
                    continue
                used.add(literal.text)
                changed = True
                out.extend(Literal(lit.text, lit.quoted, literal.pos) for lit in items_of(literal.text, literal))
            return ListValue(tuple(out), value.pos) if changed else value
        return value

    def walk(n: Node) -> Node:
        if isinstance(n, Compare):
            right = expand_value(n.right)
            return n if right is n.right else Compare(n.left, n.op, right, n.pos)
        if isinstance(n, Not):
            operand = walk(n.operand)
            return n if operand is n.operand else Not(operand, n.pos)
        if isinstance(n, (And, Or)):
            items = tuple(walk(item) for item in n.items)
            if all(a is b for a, b in zip(items, n.items)):
                return n
            return type(n)(items, n.pos)
        return n

    return walk(node)


def expanded_terms(node: Node, macro_terms: Mapping[str, int]) -> int:
    """How many terms ``node`` has once its macros are inlined (``macro_terms``: each macro's
    own count; an unknown one counts 1): and/or/not, comparisons and each list item. Counted
    without building anything, so lists or macros that double at each level cost nothing."""
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, MacroRef):
            total += macro_terms.get(n.name, 1)
        elif isinstance(n, Not):
            total += 1
            stack.append(n.operand)
        elif isinstance(n, (And, Or)):
            total += 1
            stack.extend(n.items)
        elif isinstance(n, Compare):
            total += 1 + (len(n.right.items) if isinstance(n.right, ListValue) else 0)
        else:
            total += 1
    return total


def macro_terms(names: Iterator[str] | list[str], conditions: Mapping[str, Node], known: dict[str, int]) -> dict[str, int]:
    """:func:`expanded_terms` of each named macro (``conditions``: macro name -> its condition,
    with MacroRefs), counted as the loader counts them; ``known`` is filled in and returned.
    Without recursion: a chain of thousands of macros each using the one before is as deep."""
    for name in names:
        stack, visiting = [name], set()
        while stack:
            current = stack[-1]
            if current in known or current not in conditions:
                stack.pop()
                continue
            missing = [] if current in visiting else [
                ref.name for ref in macro_refs(conditions[current]) if ref.name in conditions and ref.name not in known
            ]
            if missing:
                visiting.add(current)
                stack.extend(missing)
                continue
            known[current] = expanded_terms(conditions[current], known)  # a loop (never loaded) counts once
            stack.pop()
    return known


def macro_refs(node: Node) -> Iterator[MacroRef]:
    """Every macro reference in ``node``, in reading order."""
    stack = [node]
    found: list[MacroRef] = []
    while stack:
        n = stack.pop()
        if isinstance(n, MacroRef):
            found.append(n)
        elif isinstance(n, Not):
            stack.append(n.operand)
        elif isinstance(n, (And, Or)):
            stack.extend(reversed(n.items))
    return iter(found)


def field_refs(node: Node) -> Iterator[FieldRef]:
    """Every field read in ``node`` (left sides, ``val(...)`` and transformer operands), not inside macros."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Compare):
            yield from _fields_of(n.left)
            if isinstance(n.right, FieldValue):
                yield from _fields_of(n.right.field)
        elif isinstance(n, Not):
            stack.append(n.operand)
        elif isinstance(n, (And, Or)):
            stack.extend(reversed(n.items))


def _fields_of(expr) -> Iterator[FieldRef]:
    while isinstance(expr, Transform):
        expr = expr.operand
    if isinstance(expr, FieldRef):
        yield expr


def inline_macros(node: Node, resolved: Mapping[str, Node]) -> Node:
    """``node`` with each macro reference replaced by the macro's resolved AST.

    An inlined ``and``/``or`` joins its parent of the same kind, as the parser
    would have built it from the expanded text. Unknown names stay as MacroRef
    (the loader has reported them).
    """

    def walk(n: Node) -> Node:
        if isinstance(n, MacroRef):
            return resolved.get(n.name, n)
        if isinstance(n, Not):
            operand = walk(n.operand)
            return n if operand is n.operand else Not(operand, n.pos)
        if isinstance(n, (And, Or)):
            kind = type(n)
            items: list[Node] = []
            changed = False
            for item in n.items:
                new = walk(item)
                changed |= new is not item
                if type(new) is kind and new is not item:
                    items.extend(new.items)  # type: ignore[union-attr]
                else:
                    items.append(new)
            return kind(tuple(items), n.pos) if changed else n
        return n

    return walk(node)


def restricts_event_type(node: Node, field_name: str = "evt.type") -> bool:
    """Whether every way ``node`` can match requires a positive ``evt.type`` test.

    This is Falco's ``warn_evttypes`` check in its common form: a rule that can
    match without naming its event types is evaluated for every syscall.
    Negations and ``!=`` do not restrict (they match almost every type).
    """
    if isinstance(node, Compare):
        left = node.left
        return isinstance(left, FieldRef) and left.name == field_name and node.op in ("=", "==", "in")
    if isinstance(node, And):
        return any(restricts_event_type(item, field_name) for item in node.items)
    if isinstance(node, Or):
        return all(restricts_event_type(item, field_name) for item in node.items)
    if isinstance(node, Not) and isinstance(node.operand, Not):
        return restricts_event_type(node.operand.operand, field_name)
    return False


# `%proc.name`, `%proc.aname[2]`, `%jevt.value[/spec/x]`, `%toupper(user.name)`,
# `%basename(tolower(proc.exepath))`; `%%` is a literal percent sign.
_OUTPUT_FIELD = re.compile(r"%%|%((?:(?:tolower|toupper|b64|basename|len)\()*)"
                           r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?:\[([^\]]*)\])?")
# Falco drops this one from outputs (the container plugin adds the fields it stood for).
DEPRECATED_OUTPUT_FIELDS = frozenset({"container.info"})


@dataclass(frozen=True, slots=True)
class OutputToken:
    """One ``%...`` of an output format: ``text[start:end]``. ``name`` is None for ``%%``;
    ``transformers`` are outermost first (``%toupper(basename(proc.exepath))``)."""

    start: int
    end: int
    name: str | None
    arg: str | None = None
    transformers: tuple[str, ...] = ()
    name_start: int = 0

    @property
    def key(self) -> str:
        """How ``output_fields`` names it: the token without its ``%`` (Falco's)."""
        if self.name is None:
            return ""
        field = self.name if self.arg is None else f"{self.name}[{self.arg}]"
        for transformer in reversed(self.transformers):
            field = f"{transformer}({field})"
        return field


def output_tokens(output: str) -> Iterator[OutputToken]:
    """The ``%...`` tokens of an output format, in order. A transformer's ``(`` must be closed
    right after its field (``%toupper(user.name)``); otherwise the ``%tolower(`` is text."""
    for match in _OUTPUT_FIELD.finditer(output):
        if match.group(2) is None:
            yield OutputToken(match.start(), match.end(), None)
            continue
        opened = match.group(1)
        transformers = tuple(opened[:-1].split("(")) if opened else ()
        end = match.end()
        if transformers:
            closing = ")" * len(transformers)
            if output[end:end + len(closing)] != closing:  # not a transformer call: the field alone
                continue
            end += len(closing)
        yield OutputToken(match.start(), end, match.group(2), match.group(3), transformers, match.start(2))


def output_fields(output: str) -> Iterator[tuple[int, str, str | None]]:
    """The fields an output format prints: (offset of the name, name, argument or None)."""
    for token in output_tokens(output):
        if token.name is None or token.name in DEPRECATED_OUTPUT_FIELDS:
            continue
        yield token.name_start, token.name, token.arg
