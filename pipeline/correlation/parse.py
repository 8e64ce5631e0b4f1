"""Reads ``- correlation:`` items from rules files into the correlation model.

The items live in the same YAML files as Falco's rules, lists and macros
(Falco-only files never contain one, so upstream files load unchanged; the
rules reader leaves these items to this module). Step conditions use the
same language, lists and macros as the file's rules, and a step may reuse a
rule by name. Loading happens after the rules are loaded, because steps and
outputs are checked against the :class:`~pipeline.rules.model.RuleSet`.

Every problem is a :class:`~pipeline.errors.RuleLoadError` at the file's
``line:col``, with the line and a caret, like every other rule error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.correlation.model import (
    NS_PER_SECOND,
    Correlation,
    CorrelationLimits,
    DistinctCount,
    Sequence,
    Step,
    Threshold,
)
from pipeline.correlation.output import CompiledOutput, compile_output
from pipeline.errors import ConditionSyntaxError, ConfigError, RuleError, RuleLoadError, SourceLocation
from pipeline.fields.registry import UnknownField
from pipeline.rules.findings import Findings
from pipeline.rules.model import Priority
from pipeline.rules.parser import parse_condition
from pipeline.rules.resolve import (
    MAX_EXPANDED_TERMS,
    ExpansionTooLarge,
    expand_lists,
    expanded_terms,
    field_refs,
    macro_refs,
    macro_terms,
)
from pipeline.rules.yaml_source import (
    MappingNode,
    Node,
    ScalarNode,
    ScalarText,
    SequenceNode,
    SourceText,
    compose_documents,
    describe_kind,
    offset_in,
    read_rules_file,
)

KINDS = ("sequence", "threshold", "distinct")
COMMON_KEYS = frozenset({"correlation", "type", "desc", "source", "by", "output", "priority", "tags", "enabled", "throttle", "override"})
KIND_KEYS = {
    "sequence": COMMON_KEYS | {"steps", "maxspan", "until"},
    "threshold": COMMON_KEYS | {"condition", "rule", "window", "count"},
    "distinct": COMMON_KEYS | {"condition", "rule", "window", "count", "field"},
}
STEP_KEYS = frozenset({"name", "condition", "rule", "bind", "match"})
REPLACEABLE = frozenset(
    {"desc", "by", "output", "priority", "tags", "enabled", "throttle", "steps", "maxspan", "until", "condition", "rule", "window", "count", "field"}
)
APPENDABLE = frozenset({"tags"})
DEFAULT_BY = ("container.id",)
DURATION = re.compile(r"\s*(\d+)\s*(ns|us|ms|s|m|h|d)?\s*")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS_PER_SECOND, "m": 60 * NS_PER_SECOND, "h": 3600 * NS_PER_SECOND, "d": 86400 * NS_PER_SECOND}
STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})

RegistryFor = Callable[[str], Any]


def parse_duration(text: str) -> int | None:
    """``30s``, ``5m``, ``1h``, ``500ms``, ``1d`` (a bare number is seconds) -> ns, or None."""
    match = DURATION.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_NS[match.group(2) or "s"]


def format_duration(ns: int) -> str:
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if ns % _UNIT_NS[unit] == 0 and ns >= _UNIT_NS[unit]:
            return f"{ns // _UNIT_NS[unit]}{unit}"
    return f"{ns}ns"


class _Stop(Exception):
    def __init__(self, error: RuleError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class _RawItem:
    """One correlation's keys after overrides: key -> (key node, value node, file)."""

    name: str
    location: SourceLocation
    source_line: str
    keys: dict[str, tuple[Node, Node, SourceText]]
    extra_tags: list[tuple[Node, SourceText]] = field(default_factory=list)


class CorrelationLoader:
    """Collects correlation items from files in order, then :meth:`load` compiles them.

    ``registry_for(source)`` gives a source's field registry (default:
    :func:`pipeline.fields.registry_for`). ``collect_errors`` gathers every
    error and raises one :class:`~pipeline.errors.RuleErrors`.
    """

    def __init__(
        self,
        *,
        limits: CorrelationLimits | None = None,
        registry_for: RegistryFor | None = None,
        collect_errors: bool = False,
    ) -> None:
        self.limits = limits or CorrelationLimits()
        self.registry_for = registry_for
        self.findings = Findings(collect=collect_errors)
        self.items: dict[str, _RawItem] = {}
        self.used_lists: set[str] = set()  # lists and macros the correlations use (see without_unused_warnings)
        self.used_macros: set[str] = set()

    # -- reading ------------------------------------------------------

    def add_file(self, path: str | Path) -> None:
        path = str(path)
        text = read_rules_file(path, self.findings.error)
        if text is not None:
            self.add_text(text, path)

    def add_text(self, text: str, path: str | None = None) -> None:
        source = SourceText.of(text, path)
        try:
            documents = compose_documents(source)
        except RuleLoadError:
            return  # the rules loader reports YAML errors
        for document in documents:
            if not isinstance(document, SequenceNode):
                continue
            for item in document.value:
                if not isinstance(item, MappingNode):
                    continue
                if not any(isinstance(k, ScalarNode) and k.value == "correlation" for k, _ in item.value):
                    continue
                try:
                    self._read_item(source, item)
                except _Stop as stop:
                    self.findings.error(stop.error)

    def _fail(self, source: SourceText, message: str, where) -> _Stop:
        return _Stop(source.error(message, where))

    def _read_item(self, source: SourceText, item: MappingNode) -> None:
        keys: dict[str, tuple[Node, Node, SourceText]] = {}
        for key_node, value_node in item.value:
            if not isinstance(key_node, ScalarNode):
                raise self._fail(source, f"a key must be a plain name, got {describe_kind(key_node)}", key_node)
            if key_node.value in keys:
                raise self._fail(source, f"duplicate key '{key_node.value}'", key_node)
            keys[key_node.value] = (key_node, value_node, source)
        name_key, name_node, _ = keys["correlation"]
        if not isinstance(name_node, ScalarNode) or not name_node.value.strip():
            raise self._fail(source, "a correlation needs a name: '- correlation: <name>'", name_node if isinstance(name_node, ScalarNode) and name_node.value else name_key)
        name = name_node.value
        if "override" in keys:
            self._override(source, name, keys)
            return
        if name in self.items:
            previous = self.items[name].location
            raise self._fail(
                source,
                f"correlation '{name}' is already defined at {previous}; to change it, add 'override: {{<key>: replace}}'",
                name_node,
            )
        self._check_kind_keys(source, keys, item)
        location = source.location(item)
        self.items[name] = _RawItem(name, location, source.line(location.line), keys)

    def _check_kind_keys(self, source: SourceText, keys, item: Node) -> str:
        if "type" not in keys:
            raise self._fail(source, "missing required key 'type' (one of sequence, threshold, distinct)", item)
        type_node = keys["type"][1]
        kind = type_node.value if isinstance(type_node, ScalarNode) else None
        if kind not in KINDS:
            raise self._fail(source, f"invalid correlation type {kind!r}; expected one of {', '.join(KINDS)}", type_node)
        for name, (key_node, _, _) in keys.items():
            if name not in KIND_KEYS[kind]:
                raise self._fail(source, f"unknown key '{name}' in a {kind} correlation; allowed: {', '.join(sorted(KIND_KEYS[kind]))}", key_node)
        return kind

    def _override(self, source: SourceText, name: str, keys) -> None:
        key_node, value, _ = keys["override"]
        target = self.items.get(name)
        if target is None:
            raise self._fail(source, f"cannot override correlation '{name}': it is not defined in an earlier item or file", keys["correlation"][1])
        if not isinstance(value, MappingNode):
            raise self._fail(source, "'override' must be a mapping of key: append|replace", value if isinstance(value, ScalarNode) and value.value else key_node)
        for op_key, op_value in value.value:
            what = op_key.value if isinstance(op_key, ScalarNode) else None
            operation = op_value.value if isinstance(op_value, ScalarNode) else None
            if what not in keys:
                raise self._fail(source, f"override names '{what}' but the item has no '{what}' key", op_key)
            if operation == "replace" and what in REPLACEABLE:
                target.keys[what] = keys[what]
            elif operation == "append" and what in APPENDABLE:
                target.extra_tags.append((keys[what][1], source))
            else:
                allowed = [op for op, ok in (("append", what in APPENDABLE), ("replace", what in REPLACEABLE)) if ok]
                raise self._fail(source, f"invalid override operation for key '{what}': '{operation}'; allowed: {', '.join(allowed) or 'none'}", op_value)
        for name_, (key_node_, _, _) in keys.items():
            if name_ not in ("correlation", "override") and not any(
                isinstance(k, ScalarNode) and k.value == name_ for k, _ in value.value
            ):
                raise self._fail(source, f"key '{name_}' is not named in 'override'; add '{name_}: replace'", key_node_)

    # -- compiling ----------------------------------------------------

    def load(self, ruleset: Any) -> tuple[Correlation, ...]:
        """Compile every collected correlation against ``ruleset`` (lists, macros, rules)."""
        compiler = _Compiler(self, ruleset)
        out: list[Correlation] = []
        for raw in self.items.values():
            try:
                correlation = compiler.compile(raw)
            except _Stop as stop:
                self.findings.error(stop.error)
                continue
            out.append(correlation)
        self.findings.raise_if_any()
        return tuple(out)


def without_unused_warnings(ruleset: Any, loader: CorrelationLoader) -> Any:
    """``ruleset`` without the rules loader's unused-list/macro warnings for names that
    correlations use (the rules loader does not read correlation items)."""
    import dataclasses

    def used(warning) -> bool:
        if warning.code not in ("unused-list", "unused-macro"):
            return False
        name = warning.message.split("'")[1] if "'" in warning.message else ""
        return name in (loader.used_lists if warning.code == "unused-list" else loader.used_macros)

    kept = tuple(w for w in ruleset.warnings if not used(w))
    return dataclasses.replace(ruleset, warnings=kept) if len(kept) != len(ruleset.warnings) else ruleset


def load_rules_and_correlations(
    paths: Iterable[str | Path] | str | Path,
    *,
    limits: CorrelationLimits | None = None,
    registry_for: RegistryFor | None = None,
    collect_errors: bool = False,
) -> tuple[Any, tuple[Correlation, ...]]:
    """Rules files -> (RuleSet, correlations): what scan and the worker load."""
    from pipeline.rules.loader import RulesLoader

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    options: dict[str, Any] = {"collect_errors": collect_errors}
    if registry_for is not None:
        options["registry_for"] = registry_for
    rules_loader = RulesLoader(**options)
    loader = CorrelationLoader(limits=limits, registry_for=registry_for, collect_errors=collect_errors)
    for path in paths:
        rules_loader.add_file(path)
        loader.add_file(path)
    ruleset = rules_loader.load()
    correlations = loader.load(ruleset)
    return without_unused_warnings(ruleset, loader), correlations


def load_correlations(
    paths: Iterable[str | Path] | str | Path,
    ruleset: Any,
    *,
    limits: CorrelationLimits | None = None,
    registry_for: RegistryFor | None = None,
    collect_errors: bool = False,
) -> tuple[Correlation, ...]:
    """The correlations of ``paths`` (in order; later files override), checked against ``ruleset``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    loader = CorrelationLoader(limits=limits, registry_for=registry_for, collect_errors=collect_errors)
    for path in paths:
        loader.add_file(path)
    return loader.load(ruleset)


def _default_registry_for() -> RegistryFor:
    try:
        from pipeline.fields import registry_for  # type: ignore[attr-defined]
    except ImportError:
        raise ConfigError("no field registries are available (pipeline.fields.registry_for)") from None
    return registry_for


class _Compiler:
    def __init__(self, loader: CorrelationLoader, ruleset: Any) -> None:
        self.loader = loader
        self.limits = loader.limits
        self.ruleset = ruleset
        self.registry_for = loader.registry_for or _default_registry_for()
        self.lists = {name: lst.items for name, lst in getattr(ruleset, "lists", {}).items()}
        self.macros = dict(getattr(ruleset, "macro_conditions", {}))
        self.rules = {rule.name: rule for rule in getattr(ruleset, "rules", ())}
        self.used_lists: set[str] = loader.used_lists
        self.used_macros: set[str] = loader.used_macros
        self._macro_terms: dict[str, int] = {}

    # -- values

    def _fail(self, where: tuple[Node, SourceText] | tuple[SourceLocation, str], message: str) -> _Stop:
        first, second = where
        if isinstance(first, SourceLocation):
            return _Stop(RuleLoadError(message, first, second))
        return _Stop(second.error(message, first))

    def _node(self, raw: _RawItem, key: str) -> tuple[Node, SourceText] | None:
        entry = raw.keys.get(key)
        return None if entry is None else (entry[1], entry[2])

    def _key_where(self, raw: _RawItem, key: str) -> tuple[Node, SourceText]:
        entry = raw.keys[key]
        return entry[0], entry[2]

    def _text(self, raw: _RawItem, key: str, required: bool = False) -> ScalarText | None:
        found = self._node(raw, key)
        if found is None:
            if required:
                raise self._fail((raw.location, raw.source_line), f"correlation '{raw.name}' is missing required key '{key}'")
            return None
        node, source = found
        if not isinstance(node, ScalarNode) or node.tag.endswith(":null") or node.value == "":
            raise self._fail((node if isinstance(node, ScalarNode) and node.value else raw.keys[key][0], source), f"key '{key}' must be a non-empty string, got {describe_kind(node) if not isinstance(node, ScalarNode) else 'nothing'}")
        return ScalarText(source, node)

    def _strings(self, node: Node, source: SourceText, key: str) -> list[str]:
        if isinstance(node, ScalarNode) and node.value and not node.tag.endswith(":null"):
            return [node.value]
        if not isinstance(node, SequenceNode) or not node.value:
            raise self._fail((node, source), f"key '{key}' must be a field name or a non-empty list of them")
        out = []
        for element in node.value:
            if not isinstance(element, ScalarNode) or not element.value:
                raise self._fail((element, source), f"each entry of '{key}' must be a string")
            out.append(element.value)
        return out

    def _duration(self, raw: _RawItem, key: str) -> int:
        text = self._text(raw, key, required=True)
        ns = parse_duration(text.text)
        where = (text.node, text.source)
        if ns is None or ns <= 0:
            raise self._fail(where, f"'{key}' must be a positive duration such as 30s, 5m or 1h, got '{text.text}'")
        if ns > self.limits.max_window_ns:
            raise self._fail(
                where,
                f"'{key}' {text.text} is longer than the correlation state limit max_window "
                f"({format_duration(self.limits.max_window_ns)}); shorten it or raise the limit",
            )
        return ns

    def _count(self, raw: _RawItem) -> int:
        text = self._text(raw, "count", required=True)
        where = (text.node, text.source)
        if not text.text.strip().isdigit() or int(text.text) < 1:
            raise self._fail(where, f"'count' must be a positive integer, got '{text.text}'")
        count = int(text.text)
        if count > self.limits.max_count:
            raise self._fail(where, f"'count' {count} is above the correlation state limit max_count ({self.limits.max_count})")
        return count

    def _bool(self, raw: _RawItem, key: str, default: bool) -> bool:
        text = self._text(raw, key)
        if text is None:
            return default
        word = text.text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._fail((text.node, text.source), f"key '{key}' must be true or false, got '{text.text}'")

    # -- conditions

    def _bind(self, registry, name: str, where, context: str = ""):
        arg = None
        if name.endswith("]") and "[" in name:
            name, _, arg = name[:-1].partition("[")
        try:
            return registry.bind(name, arg)
        except UnknownField as error:
            raise self._fail(where, f"{error.args[0] if error.args else 'unknown field ' + name}{context}") from None

    def _condition(self, text: ScalarText, registry):
        from pipeline.rules.compiler import ConditionCompileError, check_condition, compile_condition

        def at(pos) -> tuple[SourceLocation, str]:
            if pos is None:
                return text.locate(0)
            return text.locate(offset_in(text.text, pos.line, pos.col))

        try:
            node = parse_condition(text.text)
        except ConditionSyntaxError as error:
            loc = error.location or SourceLocation(None, 1, 1)
            raise self._fail(text.locate(offset_in(text.text, loc.line, loc.col)), error.message) from None
        undefined: list[Any] = []
        try:
            node = expand_lists(node, self.lists, self.used_lists, undefined.append)
        except ExpansionTooLarge as error:
            raise self._fail(at(error.literal.pos), f"the lists named here expand to more than {MAX_EXPANDED_TERMS:,} items "
                             f"('{error.literal.text}', with the lists it names)") from None
        if undefined:
            literal = undefined[0]
            raise self._fail(at(literal.pos), f"undefined list '{literal.text}'")
        for ref in macro_refs(node):
            if ref.name not in self.macros:
                raise self._fail(at(ref.pos), f"undefined macro '{ref.name}'")
            self.used_macros.add(ref.name)
        macro_terms([ref.name for ref in macro_refs(node)], self.macros, self._macro_terms)
        if expanded_terms(node, self._macro_terms) > MAX_EXPANDED_TERMS:  # a macro used many times: each is inlined
            raise self._fail(at(None), f"the condition expands to more than {MAX_EXPANDED_TERMS:,} terms once its macros are inlined")
        for ref in field_refs(node):
            try:
                registry.bind(ref.name, ref.arg)
            except UnknownField as error:
                raise self._fail(at(ref.pos), str(error.args[0])) from None
        try:
            check_condition(node, self.macros, registry)
        except ConditionCompileError as error:
            raise self._fail(at(None if error.macro else error.pos), error.message) from None
        return compile_condition(node, self.macros, registry), self._inline(node)

    def _inline(self, node):
        inline = getattr(self.ruleset, "inline", None)
        return inline(node) if inline is not None else node

    def _rule_matcher(self, text: ScalarText, source: str, registry):
        from pipeline.rules.compiler import compile_condition

        rule = self.rules.get(text.text)
        if rule is None:
            raise self._fail((text.node, text.source), f"unknown rule '{text.text}' (a step's 'rule' must name a rule loaded before the correlations)")
        if rule.source != source:
            raise self._fail((text.node, text.source), f"rule '{text.text}' is for source '{rule.source}', the correlation is for '{source}'")
        return compile_condition(rule.condition, self.macros, registry), self._inline(rule.condition)

    def _step(self, name: str, mapping: dict[str, tuple[Node, Node]], source: SourceText, where: Node, registry, corr_source: str,
              bound: set[str], extra_keys: frozenset[str] = frozenset()) -> Step:
        for key, (key_node, _) in mapping.items():
            if key not in STEP_KEYS | extra_keys:
                raise self._fail((key_node, source), f"unknown key '{key}' in a step; allowed: {', '.join(sorted(STEP_KEYS))}")
        has_condition, has_rule = "condition" in mapping, "rule" in mapping
        if has_condition == has_rule:
            raise self._fail((where, source), "a step needs exactly one of 'condition' or 'rule'")
        key = "condition" if has_condition else "rule"
        node = mapping[key][1]
        if not isinstance(node, ScalarNode) or not node.value or node.tag.endswith(":null"):
            raise self._fail((node if isinstance(node, ScalarNode) and node.value else mapping[key][0], source), f"a step's '{key}' must be a non-empty string")
        text = ScalarText(source, node)
        if has_condition:
            matcher, inlined = self._condition(text, registry)
            condition_text, rule = text.text, None
        else:
            matcher, inlined = self._rule_matcher(text, corr_source, registry)
            condition_text, rule = f"rule:{text.text}", text.text
        match_pairs: list[tuple[str, str]] = []
        match_extract = []
        if "match" in mapping:
            for field_name, var, field_node, var_node in self._pairs(mapping["match"][1], source, "match"):
                if var not in bound:
                    raise self._fail((var_node, source), f"'{var}' is not bound by an earlier step (bind it with 'bind: {{{var}: <field>}}')")
                match_extract.append((self._bind(registry, field_name, (field_node, source)).extract, var))
                match_pairs.append((field_name, var))
        bind_pairs: list[tuple[str, str]] = []
        bind_extract = []
        if "bind" in mapping:
            for var, field_name, var_node, field_node in self._pairs(mapping["bind"][1], source, "bind"):
                if not STEP_NAME.fullmatch(var):
                    raise self._fail((var_node, source), f"a bound name must be an identifier, got '{var}'")
                bind_extract.append((var, self._bind(registry, field_name, (field_node, source)).extract))
                bind_pairs.append((var, field_name))
                bound.add(var)
        return Step(name, condition_text, matcher, tuple(bind_extract), tuple(bind_pairs), tuple(match_extract), tuple(match_pairs), rule, condition=inlined)

    def _pairs(self, node: Node, source: SourceText, key: str):
        if not isinstance(node, MappingNode) or not node.value:
            raise self._fail((node, source), f"'{key}' must be a mapping, e.g. {{path: fd.name}}" if key == "bind" else f"'{key}' must be a mapping, e.g. {{proc.exepath: path}}")
        for left, right in node.value:
            if not isinstance(left, ScalarNode) or not isinstance(right, ScalarNode) or not left.value or not right.value:
                raise self._fail((left, source), f"each entry of '{key}' must be 'name: value' with two strings")
            yield left.value, right.value, left, right

    def _mapping(self, node: Node, source: SourceText, what: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self._fail((node, source), f"{what} must be a mapping, got {describe_kind(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self._fail((key_node, source), "a key must be a plain name")
            if key_node.value in out:
                raise self._fail((key_node, source), f"duplicate key '{key_node.value}'")
            out[key_node.value] = (key_node, value_node)
        return out

    # -- output

    def _output(self, raw: _RawItem, registry, step_names: set[str]) -> CompiledOutput:
        text = self._text(raw, "output", required=True)
        return compile_output(text.text, registry, raw.name, step_names, lambda offset, message: self._fail(text.locate(offset), message))

    # -- items

    def compile(self, raw: _RawItem) -> Correlation:
        kind_node, kind_source = self._node(raw, "type")
        kind = kind_node.value
        source_text = self._text(raw, "source")
        source = source_text.text if source_text else "syscall"
        try:
            registry = self.registry_for(source)
        except Exception:  # noqa: BLE001 - any failure means "no such source"
            registry = None
        if registry is None:
            where = (source_text.node, source_text.source) if source_text else (raw.location, raw.source_line)
            raise self._fail(where, f"unknown source '{source}' for correlation '{raw.name}'")
        by = list(DEFAULT_BY)
        by_extract = []
        by_where: list[Any] = [(raw.location, raw.source_line)]
        if "by" in raw.keys:
            node, src = self._node(raw, "by")
            by = self._strings(node, src, "by")
            by_where = [(element, src) for element in node.value] if isinstance(node, SequenceNode) else [(node, src)]
        for field_name, where in zip(by, by_where * len(by) if len(by_where) == 1 else by_where):
            by_extract.append(self._bind(registry, field_name, where, " (in 'by')").extract)
        priority_text = self._text(raw, "priority", required=True)
        try:
            priority = Priority.parse(priority_text.text)
        except ValueError as error:
            raise self._fail((priority_text.node, priority_text.source), str(error)) from None
        tags: list[str] = []
        if "tags" in raw.keys:
            node, src = self._node(raw, "tags")
            tags = self._strings(node, src, "tags")
        for node, src in raw.extra_tags:
            tags.extend(self._strings(node, src, "tags"))
        throttle = None
        if "throttle" in raw.keys:
            text = self._text(raw, "throttle")
            throttle = parse_duration(text.text)
            if throttle is None:
                raise self._fail((text.node, text.source), f"'throttle' must be a duration such as 10m (0 to alert on every match), got '{text.text}'")
        desc = self._text(raw, "desc")
        common = dict(
            name=raw.name,
            source=source,
            by=tuple(by),
            priority=priority,
            desc=desc.text if desc else "",
            tags=tuple(sorted(set(tags))),
            enabled=self._bool(raw, "enabled", True),
            throttle_ns=throttle,
            location=raw.location,
            by_extract=tuple(by_extract),
        )
        if kind == "sequence":
            return self._sequence(raw, registry, common)
        return self._windowed(raw, registry, common, kind)

    def _sequence(self, raw: _RawItem, registry, common: dict) -> Sequence:
        maxspan = self._duration(raw, "maxspan")
        found = self._node(raw, "steps")
        if found is None:
            raise self._fail((raw.location, raw.source_line), f"sequence '{raw.name}' is missing required key 'steps'")
        node, source = found
        if not isinstance(node, SequenceNode) or len(node.value) < 2:
            raise self._fail((node, source), "'steps' must be a list of at least two steps (for one event, write a rule)")
        steps: list[Step] = []
        bound: set[str] = set()
        names: set[str] = set()
        for index, step_node in enumerate(node.value, start=1):
            mapping = self._mapping(step_node, source, "a step")
            name = f"step{index}"
            if "name" in mapping:
                name_node = mapping["name"][1]
                if not isinstance(name_node, ScalarNode) or not STEP_NAME.fullmatch(name_node.value or ""):
                    raise self._fail((name_node, source), "a step's 'name' must be an identifier (letters, digits, _)")
                name = name_node.value
            if name in names:
                raise self._fail((step_node, source), f"duplicate step name '{name}'")
            names.add(name)
            steps.append(self._step(name, mapping, source, step_node, registry, common["source"], bound))
        until = None
        if "until" in raw.keys:
            until_node, until_source = self._node(raw, "until")
            if isinstance(until_node, MappingNode):
                mapping = self._mapping(until_node, until_source, "'until'")
                until = self._step("until", mapping, until_source, until_node, registry, common["source"], set(bound))
            else:
                text = self._text(raw, "until")
                matcher, inlined = self._condition(text, registry)
                until = Step("until", text.text, matcher, condition=inlined)
        output = self._output(raw, registry, names)
        steps = [dataclasses.replace(step, record=output.records[step.name]) if step.name in output.records else step for step in steps]
        return Sequence(
            **common, output=output.format.text, output_format=output.format,
            steps=tuple(steps), maxspan_ns=maxspan, until=until,
        )

    def _windowed(self, raw: _RawItem, registry, common: dict, kind: str) -> Threshold | DistinctCount:
        window = self._duration(raw, "window")
        count = self._count(raw)
        mapping = {k: (v[0], v[1]) for k, v in raw.keys.items() if k in ("condition", "rule")}
        if not mapping:
            raise self._fail((raw.location, raw.source_line), f"{kind} correlation '{raw.name}' needs a 'condition' or a 'rule'")
        first = next(iter(raw.keys[k] for k in ("condition", "rule") if k in raw.keys))
        step = self._step("event", mapping, first[2], first[0], registry, common["source"], set())
        output = self._output(raw, registry, set())
        common.update(output=output.format.text, output_format=output.format)
        if kind == "threshold":
            return Threshold(**common, step=step, window_ns=window, count=count)
        field_text = self._text(raw, "field", required=True)
        bound = self._bind(registry, field_text.text, (field_text.node, field_text.source))
        return DistinctCount(
            **common, step=step, window_ns=window, count=count, field_name=field_text.text, field_extract=bound.extract,
        )


__all__ = ["CorrelationLoader", "load_correlations", "load_rules_and_correlations", "without_unused_warnings", "parse_duration", "format_duration", "KINDS"]
