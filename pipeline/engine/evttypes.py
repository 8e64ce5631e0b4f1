"""Which event types a condition can match: Falco's evttype index, done soundly.

Falco indexes syscall rules by ``evt.type`` so an event is only tested
against rules that can match its type. For every node we compute two sets:
the types for which it *can be true* and those for which it *can be false*;
``not`` swaps them, ``and``/``or`` combine them. Tests that are not about
``evt.type`` can be either for any type. The result never leaves out a type
the condition can match (Falco's older resolver could, under ``not``).

A set is finite (``only`` these types) or co-finite (every type ``except``
these), so "all types" needs no list of every syscall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pipeline.rules.ast import And, Compare, MacroRef, Node, Not, Or
from pipeline.rules.compiler import evttype_test


@dataclass(frozen=True, slots=True)
class EvttypeSet:
    """``names`` (complement False) or every type but ``names`` (complement True)."""

    names: frozenset[str]
    complement: bool

    def admits(self, evttype: str) -> bool:
        return (evttype in self.names) != self.complement

    @property
    def is_all(self) -> bool:
        return self.complement and not self.names

    def union(self, other: "EvttypeSet") -> "EvttypeSet":
        if not self.complement and not other.complement:
            return EvttypeSet(self.names | other.names, False)
        if self.complement and other.complement:
            return EvttypeSet(self.names & other.names, True)
        finite, cofinite = (self, other) if not self.complement else (other, self)
        return EvttypeSet(cofinite.names - finite.names, True)

    def intersection(self, other: "EvttypeSet") -> "EvttypeSet":
        if not self.complement and not other.complement:
            return EvttypeSet(self.names & other.names, False)
        if self.complement and other.complement:
            return EvttypeSet(self.names | other.names, True)
        finite, cofinite = (self, other) if not self.complement else (other, self)
        return EvttypeSet(finite.names - cofinite.names, False)

    def __str__(self) -> str:
        if self.is_all:
            return "all event types"
        listed = ", ".join(sorted(self.names))
        return f"all event types except ({listed})" if self.complement else f"({listed})"


ALL = EvttypeSet(frozenset(), True)
NONE = EvttypeSet(frozenset(), False)


def evttypes_of(node: Node, macros: Mapping[str, Node]) -> EvttypeSet:
    """The event types ``node`` can be true for (macros resolved through ``macros``)."""
    return _sets(node, macros, {})[0]


def _sets(node: Node, macros: Mapping[str, Node], memo: dict[str, tuple[EvttypeSet, EvttypeSet]]) -> tuple[EvttypeSet, EvttypeSet]:
    """(can be true for, can be false for)."""
    if isinstance(node, Compare):
        test = evttype_test(node)
        if test is None:
            return ALL, ALL
        names, negated = test
        only, others = EvttypeSet(names, False), EvttypeSet(names, True)
        return (others, only) if negated else (only, others)
    if isinstance(node, MacroRef):
        if node.name not in memo:
            body = macros.get(node.name)
            memo[node.name] = (ALL, ALL)  # unknown or recursive macros: no narrowing
            if body is not None:
                memo[node.name] = _sets(body, macros, memo)
        return memo[node.name]
    if isinstance(node, Not):
        can_true, can_false = _sets(node.operand, macros, memo)
        return can_false, can_true
    if isinstance(node, And):
        true_set, false_set = ALL, NONE
        for item in node.items:
            item_true, item_false = _sets(item, macros, memo)
            true_set = true_set.intersection(item_true)
            false_set = false_set.union(item_false)
        return true_set, false_set
    if isinstance(node, Or):
        true_set, false_set = NONE, ALL
        for item in node.items:
            item_true, item_false = _sets(item, macros, memo)
            true_set = true_set.union(item_true)
            false_set = false_set.intersection(item_false)
        return true_set, false_set
    raise TypeError(f"not a condition node: {node!r}")
