"""What a loaded Falco rules set is: lists, macros, rules and load warnings.

Everything here is a frozen value built once by :mod:`pipeline.rules.loader`.
A :class:`Rule`'s ``condition`` is ready to compile: lists are expanded and
the rule's exceptions are appended as ``and not (...)`` terms, exactly as
Falco builds them. Macros stay :class:`~pipeline.rules.ast.MacroRef` nodes,
each known to exist, so a compiler can evaluate a shared macro once per
event; their bodies are :attr:`RuleSet.macro_conditions`, and
:meth:`RuleSet.inline` gives the plain tree with every macro substituted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from pipeline.errors import SourceLocation
from pipeline.rules.ast import Node


class Priority(IntEnum):
    """Falco's priorities, most severe first (a lower value is more severe, as in Falco)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7
    INFO = 6  # alias: Falco accepts both spellings

    @classmethod
    def parse(cls, text: str) -> "Priority":
        """Case-insensitive, ``info`` and ``informational`` alike. Raises ValueError."""
        if not isinstance(text, str):
            raise ValueError(f"invalid priority {text!r}")
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(p.name for p in PRIORITIES)
            raise ValueError(f"invalid priority '{text}'; expected one of {choices}") from None

    @property
    def label(self) -> str:
        """Falco's spelling in alerts: ``Critical``, ``Informational``..."""
        return self.name.capitalize()


PRIORITIES: tuple[Priority, ...] = tuple(p for p in Priority)  # aliases are not iterated


@dataclass(frozen=True, slots=True)
class List:
    """A named list; ``items`` already has references to earlier lists expanded."""

    name: str
    items: tuple[str, ...]
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Macro:
    """A named condition; ``condition`` has lists expanded (macros it uses stay MacroRef)."""

    name: str
    condition: Node
    condition_text: str
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RuleException:
    """One entry of a rule's ``exceptions``, as written (after appends).

    ``fields`` and ``comps`` are a string (one field) or a tuple (several).
    ``values`` are strings for one field, tuples for several; an element of
    a tuple may itself be a tuple (a list of alternatives for ``in``).
    """

    name: str
    fields: str | tuple[str, ...]
    comps: str | tuple[str, ...]
    values: tuple
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    desc: str
    condition: Node
    condition_text: str
    output: str
    priority: Priority
    source: str = "syscall"
    enabled: bool = True
    tags: tuple[str, ...] = ()
    exceptions: tuple[RuleException, ...] = ()
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PluginRequirement:
    name: str
    version: str


# warnings that change what runs, which scan and the worker print: a rule skipped (of a plugin's
# source, or using an unknown field with skip-if-unknown-filter), a file newer than the engine
RULE_SKIPPING_WARNINGS = frozenset({"unknown-source", "unknown-field-skipped"})
SHOWN_WARNINGS = RULE_SKIPPING_WARNINGS | {"engine-version"}


@dataclass(frozen=True, slots=True)
class LoadWarning:
    """A finding that does not stop loading (Falco's load warnings), with where it is."""

    code: str
    message: str
    location: SourceLocation | None = None
    source_line: str | None = field(default=None, compare=False)

    @property
    def skips_a_rule(self) -> bool:
        """Whether a rule is not loaded because of it."""
        return self.code in RULE_SKIPPING_WARNINGS

    @property
    def shown(self) -> bool:
        """Whether ``scan`` and the worker print it (``rules validate`` prints every warning)."""
        return self.code in SHOWN_WARNINGS

    def __str__(self) -> str:
        head = f"{self.location}: warning: {self.message}" if self.location else f"warning: {self.message}"
        if self.source_line is None or self.location is None:
            return head
        caret = " " * max(self.location.col - 1, 0) + "^"
        return f"{head}\n    {self.source_line.rstrip()}\n    {caret}"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules in load order (a rule keeps the place of its first definition, as in Falco)."""

    rules: tuple[Rule, ...]
    macros: Mapping[str, Macro] = field(default_factory=lambda: MappingProxyType({}))
    lists: Mapping[str, List] = field(default_factory=lambda: MappingProxyType({}))
    required_engine_version: str | None = None
    # Each entry is a set of alternatives: any one of them satisfies it.
    required_plugin_versions: tuple[tuple[PluginRequirement, ...], ...] = ()
    warnings: tuple[LoadWarning, ...] = ()
    # Each macro's condition with every macro it uses substituted (see inline()).
    inlined_macros: Mapping[str, Node] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def macro_conditions(self) -> Mapping[str, Node]:
        """Macro name -> its condition (with MacroRefs), what a compiler resolves MacroRef with."""
        return MappingProxyType({name: macro.condition for name, macro in self.macros.items()})

    def inline(self, node: Node) -> Node:
        """``node`` with every macro reference replaced by the macro's fully substituted condition."""
        from pipeline.rules.resolve import inline_macros

        return inline_macros(node, self.inlined_macros)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def enabled_rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)
