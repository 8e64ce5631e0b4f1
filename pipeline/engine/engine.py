"""The rule engine: which rules match an event, fast.

Built once from loaded rules; per source it compiles one Python module (see
:mod:`pipeline.rules.compiler`). For the ``syscall`` source, rules are
indexed by event type as Falco does: one generated function per event type
named by some rule (holding, in file order, only the rules that can match
that type, with their ``evt.type`` tests folded away), one for types no rule
names, and one, unfolded, for events without a usable ``evt.type``. Other
sources get a single function.

``evaluate`` returns the matching rule objects as a tuple (the same empty
tuple when nothing matches, so the common path allocates nothing). With
``rule_matching="first"`` (Falco's default) it stops at the first match in
file order; with ``"all"`` it returns every match.

Generated code assumes field values have their declared types. When an odd
event makes it raise, the event is evaluated again, rule by rule, with the
reference evaluator, which treats odd values as no match; if even that
raises, :class:`EvaluationError` names the rule so the event can be dead-lettered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from pipeline.engine.evttypes import EvttypeSet, evttypes_of
from pipeline.errors import ConfigError, PeregrineError
from pipeline.fields.registry import FieldRegistry, UnknownField
from pipeline.rules.ast import Node
from pipeline.rules.compiler import (
    EVT_TYPE,
    BucketRule,
    EvttypeContext,
    FieldBinder,
    _Module,
    fold,
    generate_bucket,
    named_evttypes,
)
from pipeline.rules.reference import ReferenceEvaluator

EMPTY: tuple = ()
RULE_MATCHING = ("first", "all")
INDEXED_SOURCES = frozenset({"syscall"})


class EvaluationError(PeregrineError):
    """A rule could not be evaluated on an event (the event should be dead-lettered)."""

    def __init__(self, rule_name: str, source: str, cause: BaseException) -> None:
        super().__init__(f"rule '{rule_name}' ({source}) failed on an event: {type(cause).__name__}: {cause}")
        self.rule_name = rule_name
        self.source = source
        self.cause = cause


@dataclass(frozen=True, slots=True)
class EngineRule:
    """What the engine needs of a rule; ``rule`` is what ``evaluate`` returns."""

    rule: Any
    name: str
    condition: Node
    source: str
    evttypes: EvttypeSet


RegistryFor = Callable[[str], FieldRegistry]


class _SourcePlan:
    """The compiled evaluator of one source, and what the slow path needs."""

    def __init__(self, source: str, rules: list[EngineRule], macros: Mapping[str, Node], registry: FieldRegistry, mode: str) -> None:
        self.source = source
        self.rules = rules
        self.reference = ReferenceEvaluator(registry, macros)
        self.candidates: dict[str, list[EngineRule]] = {}
        module = _Module()
        binder = FieldBinder(registry)
        names = itertools.count()

        def bucket(rules_here: list[EngineRule], ctx: EvttypeContext | None) -> str:
            name = f"_bucket{next(names)}"
            folded_macros: dict[str, Node | bool] = {}
            entries: list[BucketRule] = []
            kept: list[EngineRule] = []
            for rule in rules_here:
                condition: Node | bool = rule.condition if ctx is None else fold(rule.condition, ctx, macros, folded_macros)
                if condition is False:
                    continue
                entries.append(BucketRule(rule.rule, condition))
                kept.append(rule)
            generate_bucket(module, name, entries, binder, macros, folded_macros, mode)
            self.candidates[name] = kept
            return name

        generic = bucket(rules, None)
        table: str | None = None
        evttype_bound = None
        if source in INDEXED_SOURCES:
            try:
                evttype_bound = registry.bind(EVT_TYPE)
            except UnknownField:
                evttype_bound = None
        if evttype_bound is None:
            module.functions.append(self._dispatch_plain(generic))
        else:
            named = named_evttypes((rule.condition for rule in rules), macros)
            by_type = {
                evttype: bucket([r for r in rules if r.evttypes.admits(evttype)], EvttypeContext(evttype, named))
                for evttype in sorted(named)
            }
            other = bucket([r for r in rules if r.evttypes.complement], EvttypeContext(None, named))
            table = module.const_identity(dict(by_type), "table")  # bucket names, replaced by functions below
            if evttype_bound.flat_key is not None:
                read = f"e.get({evttype_bound.flat_key!r})"
            else:
                read = f"{module.const(evttype_bound.extract, 'x')}(e)"
            module.functions.append(self._dispatch_indexed(read, table, other, generic))
        module.namespace["_slow"] = self._slow
        namespace = module.build(f"peregrine-rules-{source}")
        if table is not None:
            namespace[table].update({evttype: namespace[fn] for evttype, fn in namespace[table].items()})
        self.functions = {name: namespace[name] for name in self.candidates}
        self.by_function = {fn: self.candidates[name] for name, fn in self.functions.items()}
        self.evaluate: Callable[[Any], tuple] = namespace["_dispatch"]
        self.source_code: str = namespace["__source__"]
        self.bucket_count = len(self.candidates)
        self.mode = mode

    @staticmethod
    def _dispatch_plain(generic: str) -> str:
        return "\n".join(
            [
                "def _dispatch(e):",
                "    try:",
                f"        return {generic}(e)",
                "    except Exception:",
                f"        return _slow(e, {generic})",
            ]
        )

    @staticmethod
    def _dispatch_indexed(read: str, table: str, other: str, generic: str) -> str:
        return "\n".join(
            [
                "def _dispatch(e):",
                f"    t = {read}",
                f"    f = {table}.get(t, {other}) if t.__class__ is str else {generic}",
                "    try:",
                "        return f(e)",
                "    except Exception:",
                "        return _slow(e, f)",
            ]
        )

    def _slow(self, event: Any, function: Callable[[Any], tuple]) -> tuple:
        """Evaluate ``event`` rule by rule with the reference evaluator (odd values: no match)."""
        matched: list[Any] = []
        for rule in self.by_function.get(function, self.rules):
            try:
                hit = self.reference.evaluate(rule.condition, event)
            except Exception as error:  # noqa: BLE001 - named and re-raised for the dead-letter path
                raise EvaluationError(rule.name, self.source, error) from error
            if hit:
                matched.append(rule.rule)
                if self.mode == "first":
                    break
        return tuple(matched) if matched else EMPTY


class Engine:
    """Evaluates events against compiled rules; build once, call ``evaluate`` per event."""

    def __init__(
        self,
        rules: Iterable[Any],
        macros: Mapping[str, Node],
        registry_for: RegistryFor | Mapping[str, FieldRegistry],
        *,
        rule_matching: str = "first",
        min_priority: Any = None,
    ) -> None:
        """``rules``: objects with ``name``, ``condition`` (AST), ``source`` and, optionally,
        ``enabled`` and ``priority`` (the loader's :class:`~pipeline.rules.model.Rule`), or
        ``(name, condition, source)`` tuples.
        ``macros``: name -> condition AST. ``min_priority``: drop rules less severe than it
        (priorities compare like Falco's, a lower value being more severe)."""
        if rule_matching not in RULE_MATCHING:
            raise ConfigError(f"rule_matching must be one of {', '.join(RULE_MATCHING)}, got '{rule_matching}'")
        lookup = registry_for.__getitem__ if isinstance(registry_for, Mapping) else registry_for
        self.rule_matching = rule_matching
        self.macros = dict(macros)
        by_source: dict[str, list[EngineRule]] = {}
        for rule in rules:
            if isinstance(rule, tuple):  # (name, condition, source): what a caller without a loader has
                name, condition, source = rule
                rule = _PlainRule(name, condition, source)
            if not getattr(rule, "enabled", True):
                continue
            if min_priority is not None and getattr(rule, "priority", None) is not None and rule.priority > min_priority:
                continue
            source = getattr(rule, "source", "syscall") or "syscall"
            entry = EngineRule(rule, rule.name, rule.condition, source, evttypes_of(rule.condition, self.macros))
            by_source.setdefault(source, []).append(entry)
        self._plans: dict[str, _SourcePlan] = {}
        for source, entries in by_source.items():
            try:
                registry = lookup(source)
            except (KeyError, LookupError) as error:
                raise ConfigError(f"no field registry for source '{source}': {error}") from None
            self._plans[source] = _SourcePlan(source, entries, self.macros, registry, rule_matching)
        self._evaluators: dict[str, Callable[[Any], tuple]] = {s: p.evaluate for s, p in self._plans.items()}

    @classmethod
    def from_ruleset(
        cls,
        ruleset: Any,
        registry_for: RegistryFor | Mapping[str, FieldRegistry] | None = None,
        *,
        rule_matching: str = "first",
        min_priority: Any = None,
    ) -> "Engine":
        """From the loader's :class:`~pipeline.rules.model.RuleSet` (rules in load order, macros)."""
        if registry_for is None:
            from pipeline.fields import registry_for as default_registry_for  # type: ignore[attr-defined]

            registry_for = default_registry_for
        macros = getattr(ruleset, "macro_conditions", None)
        if macros is None:
            macros = {name: getattr(m, "condition", m) for name, m in getattr(ruleset, "macros", {}).items()}
        return cls(ruleset.rules, macros, registry_for, rule_matching=rule_matching, min_priority=min_priority)

    # -- evaluation

    def evaluate(self, event: Any, source: str) -> tuple:
        """The rules ``event`` matches, in file order (at most one with rule_matching 'first')."""
        evaluate = self._evaluators.get(source)
        if evaluate is None:
            return EMPTY
        return evaluate(event)

    def evaluator(self, source: str) -> Callable[[Any], tuple]:
        """``event -> matching rules`` for one source, without the per-call source lookup."""
        return self._evaluators.get(source, _no_rules)

    # -- introspection

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self._plans)

    def rules(self, source: str) -> Sequence[Any]:
        plan = self._plans.get(source)
        return [entry.rule for entry in plan.rules] if plan else []

    def evttypes(self, source: str = "syscall") -> dict[str, EvttypeSet]:
        """Rule name -> the event types it can match (Falco's index)."""
        plan = self._plans.get(source)
        return {entry.name: entry.evttypes for entry in plan.rules} if plan else {}

    def bucket_count(self, source: str) -> int:
        plan = self._plans.get(source)
        return plan.bucket_count if plan else 0

    def generated_source(self, source: str) -> str:
        """The generated Python for ``source`` (for debugging and profiling)."""
        plan = self._plans.get(source)
        return plan.source_code if plan else ""


@dataclass(frozen=True, slots=True)
class _PlainRule:
    name: str
    condition: Node
    source: str


def _no_rules(event: Any) -> tuple:
    return EMPTY
