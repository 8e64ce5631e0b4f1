"""Reads one rules file's YAML items into the :class:`Collector`, checking their shape.

This is Falco's ``rule_loader::reader``: which keys an item needs, which it
may have, what ``append`` and ``override`` mean for each kind, and what is
only a warning (a deprecated ``append: true``, a standalone ``enabled``, an
unknown top-level item or key). Every problem is reported at the YAML node
it is about, with the file's line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pipeline.errors import RuleError, RuleLoadError
from pipeline.rules.collector import CollectError, Collector, ListInfo, MacroInfo, RuleInfo, RuleUpdate
from pipeline.rules.exceptions import Entry, ExceptionInfo
from pipeline.rules.findings import Findings
from pipeline.rules.model import PluginRequirement, Priority
from pipeline.rules.yaml_source import (
    FixedText,
    MappingNode,
    Node,
    ScalarNode,
    ScalarText,
    SequenceNode,
    SourceText,
    compose_documents,
    describe_kind,
)

# Falco's name checks (libsinsp's identifier and bare-string tokens).
LIST_NAME = re.compile(r"[^()\"'\s=,]+")
MACRO_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# the Falco engine version whose rules language Peregrine implements: what Falco's own rule files
# (../shared/upstream/falco-rules) require; a file requiring more loads, with a warning
ENGINE_VERSION = (0, 57, 0)
ENGINE_VERSION_TEXT = "0.57.0"

RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = (
    "condition", "output", "desc", "priority", "tags", "exceptions", "enabled", "warn_evttypes", "skip-if-unknown-filter",
)
# An item's kind is the first of these keys it has, in Falco's order (an item with both
# 'list' and 'rule' is a list, whose 'rule' key is unknown).
KNOWN_KEYS = {
    "required_engine_version": frozenset({"required_engine_version"}),
    "required_plugin_versions": frozenset({"required_plugin_versions"}),
    "list": frozenset({"list", "items", "append", "override"}),
    "macro": frozenset({"macro", "condition", "append", "override"}),
    "rule": frozenset(
        {"rule", "desc", "condition", "output", "priority", "source", "enabled", "tags", "exceptions",
         "warn_evttypes", "skip-if-unknown-filter", "append", "override", "capture", "capture_duration"}
    ),
}
EXCEPTION_KEYS = frozenset({"name", "fields", "comps", "values"})
# lists in an exception's fields, comps or values: Falco's deepest is values' rows of lists of
# alternatives (3); a little deeper still gets the shape error where the condition is built
MAX_EXCEPTION_NESTING = 8

WARNING_APPEND = (
    "'append' is deprecated; write an 'override' entry instead (e.g. 'override: {condition: append}')"
)
WARNING_ENABLED = (
    "a standalone 'enabled' is deprecated; add 'override: {enabled: replace}'"
)
_TRUE = frozenset({"true", "yes", "on", "y"})
_FALSE = frozenset({"false", "no", "off", "n"})


class _ItemError(Exception):
    """Stops reading one item; carries the error to report."""

    def __init__(self, error: RuleError) -> None:
        super().__init__(str(error))
        self.error = error


def _is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag.endswith(":null")


class FileReader:
    """Reads the items of one file, in order, into a collector."""

    def __init__(
        self,
        source: SourceText,
        collector: Collector,
        findings: Findings,
        known_source: Callable[[str], bool],
        skip_unknown_sources: bool,
        broken: set[tuple[str, str]],
    ) -> None:
        self.source = source
        self.collector = collector
        self.findings = findings
        self.known_source = known_source
        self.skip_unknown_sources = skip_unknown_sources
        self.broken = broken  # (kind, name) of items whose definition failed: no cascades

    # -- reporting ----------------------------------------------------

    def _fail(self, message: str, where) -> _ItemError:
        return _ItemError(self.source.error(message, where))

    def _warn(self, code: str, message: str, where) -> None:
        location = self.source.location(where)
        self.findings.warn(code, message, location, self.source.line(location.line))

    # -- the file -----------------------------------------------------

    def read(self) -> bool:
        """Read every item. Returns False when the file is not readable YAML at all."""
        try:
            documents = compose_documents(self.source)
        except RuleLoadError as error:
            self.findings.error(error)
            return False
        for document in documents:
            if _is_null(document):
                continue
            if not isinstance(document, SequenceNode):
                self.findings.error(self.source.error(
                    f"a rules file must be a YAML list of items ('- rule: ...', '- macro: ...', '- list: ...'), got {describe_kind(document)}",
                    document,
                ))
                continue
            for item in document.value:
                if _is_null(item):
                    continue
                try:
                    self._read_item(item)
                except _ItemError as stop:
                    self.findings.error(stop.error)
        return True

    def _read_item(self, item: Node) -> None:
        if not isinstance(item, MappingNode):
            raise self._fail(
                f"each item must be a mapping ('- rule: ...', '- macro: ...', '- list: ...'), got {describe_kind(item)}", item
            )
        keys = self._mapping(item)
        if "correlation" in keys:
            return  # read by pipeline.correlation.parse, once the rules are loaded
        for kind in KNOWN_KEYS:
            if kind in keys:
                self._check_keys(keys, KNOWN_KEYS[kind], kind)
                getattr(self, f"_read_{kind}")(item, keys)
                return
        self._warn("unknown-item", f"unknown top-level item (keys: {', '.join(keys)}); it is ignored", item)

    def _mapping(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        keys: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self._fail(f"a key must be a plain name, got {describe_kind(key_node)}", key_node)
            if key_node.value in keys:
                raise self._fail(f"duplicate key '{key_node.value}'", key_node)
            keys[key_node.value] = (key_node, value_node)
        return keys

    def _check_keys(self, keys: dict[str, tuple[Node, Node]], known: frozenset[str], kind: str) -> None:
        for name, (key_node, _) in keys.items():
            if name not in known:
                self._warn("unknown-key", f"unknown key '{name}' in a {kind.replace('_', ' ')} item; it is ignored", key_node)

    # -- values -------------------------------------------------------

    def _scalar(self, keys, key: str, item: Node, required: bool = True) -> ScalarText | None:
        if key not in keys:
            if required:
                raise self._fail(f"missing required key '{key}'", item)
            return None
        value = keys[key][1]
        if _is_null(value):
            raise self._fail(f"key '{key}' is empty", keys[key][0])
        if not isinstance(value, ScalarNode):
            raise self._fail(f"key '{key}' must be a string, got {describe_kind(value)}", value)
        if value.value == "":
            raise self._fail(f"key '{key}' must not be empty", value)
        return ScalarText(self.source, value)

    def _string(self, keys, key: str, item: Node, required: bool = True) -> str | None:
        scalar = self._scalar(keys, key, item, required)
        return None if scalar is None else scalar.text

    def _bool(self, keys, key: str, item: Node, required: bool = False) -> bool | None:
        scalar = self._scalar(keys, key, item, required)
        if scalar is None:
            return None
        word = scalar.text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._fail(f"key '{key}' must be true or false, got '{scalar.text}'", scalar.node)

    def _strings(self, keys, key: str, item: Node, required: bool = False) -> list[str] | None:
        if key not in keys:
            if required:
                raise self._fail(f"missing required key '{key}'", item)
            return None
        value = keys[key][1]
        if not isinstance(value, SequenceNode):
            got = "nothing" if _is_null(value) else describe_kind(value)
            raise self._fail(f"key '{key}' must be a list of strings (e.g. [a, b]), got {got}", value if not _is_null(value) else keys[key][0])
        out = []
        for element in value.value:
            if not isinstance(element, ScalarNode) or _is_null(element):
                raise self._fail(f"each entry of '{key}' must be a string, got {'nothing' if _is_null(element) else describe_kind(element)}", element)
            out.append(element.value)
        return out

    def _overrides(self, keys, appendable, replaceable) -> tuple[set[str], set[str]]:
        if "override" not in keys:
            return set(), set()
        key_node, value = keys["override"]
        if not isinstance(value, MappingNode):
            raise self._fail("'override' must be a mapping of key: append|replace", value if not _is_null(value) else key_node)
        appends, replaces = set(), set()
        for name, (name_node, operation_node) in self._mapping(value).items():
            operation = operation_node.value if isinstance(operation_node, ScalarNode) else None
            if operation == "append":
                if name not in appendable:
                    hint = ", use 'replace' instead" if name in replaceable else ""
                    raise self._fail(f"key '{name}' cannot be appended to{hint}", name_node)
                appends.add(name)
            elif operation == "replace":
                if name not in replaceable:
                    raise self._fail(f"key '{name}' cannot be replaced", name_node)
                replaces.add(name)
            else:
                allowed = [op for op, ok in (("append", name in appendable), ("replace", name in replaceable)) if ok]
                shown = operation if operation is not None else describe_kind(operation_node)
                raise self._fail(
                    f"invalid override operation for key '{name}': '{shown}'; allowed: {', '.join(allowed) or 'none'}",
                    operation_node,
                )
        return appends, replaces

    def _collect(self, action: Callable[[], None], item: Node) -> None:
        try:
            action()
        except CollectError as error:
            if error.location is not None:
                raise _ItemError(RuleLoadError(error.message, error.location, error.source_line)) from None
            raise self._fail(error.message, item) from None

    # -- requirements -------------------------------------------------

    def _read_required_engine_version(self, item: Node, keys) -> None:
        scalar = self._scalar(keys, "required_engine_version", item)
        text = scalar.text.strip()
        if text.isdigit():
            version = (0, int(text), 0)  # Falco: an integer N means 0.N.0
        else:
            match = SEMVER.fullmatch(text)
            if match is None:
                raise self._fail(
                    f"cannot read engine version '{text}'; expected an integer or \"x.y.z\"", scalar.node
                )
            version = tuple(int(part) for part in match.groups())
        self.collector.require_engine_version(version, ".".join(map(str, version)))
        if version > ENGINE_VERSION:
            self._warn("engine-version", f"the file requires Falco engine version {text}, newer than the {ENGINE_VERSION_TEXT} "
                       "whose rules language Peregrine implements: a rule may use something it does not have", scalar.node)

    def _read_required_plugin_versions(self, item: Node, keys) -> None:
        key_node, value = keys["required_plugin_versions"]
        if not isinstance(value, SequenceNode):
            raise self._fail("'required_plugin_versions' must be a list of {name, version}", value)
        for entry in value.value:
            requirement = self._plugin_requirement(entry, "plugin version")
            alternatives = [requirement]
            entry_keys = self._mapping(entry)
            if "alternatives" in entry_keys:
                others = entry_keys["alternatives"][1]
                if not isinstance(others, SequenceNode):
                    raise self._fail("plugin version 'alternatives' must be a list of {name, version}", others)
                alternatives.extend(self._plugin_requirement(other, "plugin version alternative") for other in others.value)
            self._collect(lambda: self.collector.require_plugins(tuple(alternatives)), entry)

    def _plugin_requirement(self, node: Node, what: str) -> PluginRequirement:
        if not isinstance(node, MappingNode):
            raise self._fail(f"a {what} must be a mapping with 'name' and 'version'", node)
        keys = self._mapping(node)
        name = self._string(keys, "name", node)
        version = self._scalar(keys, "version", node)
        if not SEMVER.match(version.text.strip()):
            raise self._fail(f"invalid required version '{version.text}' for plugin '{name}'", version.node)
        return PluginRequirement(name, version.text.strip())

    # -- lists and macros ---------------------------------------------

    def _read_list(self, item: Node, keys) -> None:
        name = self._string(keys, "list", item)
        location = self.source.location(item)
        line = self.source.line(location.line)
        try:
            if not LIST_NAME.fullmatch(name):  # Falco warns: such a list loads, though no condition can name it
                self._warn("invalid-list-name", f"invalid list name '{name}': a list's name may not contain blanks, quotes, "
                           "parentheses, '=' or ',', so no condition can use it", keys["list"][1])
            items = self._strings(keys, "items", item, required=True)
            append = self._append_flag(keys, item)
            appends, replaces = self._overrides(keys, {"items"}, {"items"})
            if append and (appends or replaces):
                raise self._fail("'override' and 'append: true' cannot be used together; use only 'override'", item)
            info = ListInfo(name, items, location, line)
            if append or appends:
                if ("list", name) in self.broken:
                    return
                self._collect(lambda: self.collector.append_list(info), item)
            else:
                self.collector.define_list(info)
                self.broken.discard(("list", name))
        except _ItemError:
            self.broken.add(("list", name))
            raise

    def _read_macro(self, item: Node, keys) -> None:
        name = self._string(keys, "macro", item)
        location = self.source.location(item)
        line = self.source.line(location.line)
        try:
            if not MACRO_NAME.fullmatch(name):  # Falco warns: such a macro loads, though no condition can name it
                self._warn("invalid-macro-name", f"invalid macro name '{name}': a macro's name must start with a letter and "
                           "hold only letters, digits and '_', so no condition can use it", keys["macro"][1])
            condition = self._scalar(keys, "condition", item)
            append = self._append_flag(keys, item)
            appends, replaces = self._overrides(keys, {"condition"}, {"condition"})
            if append and (appends or replaces):
                raise self._fail("'override' and 'append: true' cannot be used together; use only 'override'", item)
            info = MacroInfo(name, [condition], location, line)
            if append or appends:
                if ("macro", name) in self.broken:
                    return
                self._collect(lambda: self.collector.append_macro(info), item)
            else:
                self.collector.define_macro(info)
                self.broken.discard(("macro", name))
        except _ItemError:
            self.broken.add(("macro", name))
            raise

    def _append_flag(self, keys, item: Node) -> bool:
        append = bool(self._bool(keys, "append", item))
        if append:
            self._warn("deprecated-append", WARNING_APPEND, keys["append"][0])
        return append

    # -- rules --------------------------------------------------------

    def _read_rule(self, item: Node, keys) -> None:
        name = self._string(keys, "rule", item)
        location = self.source.location(item)
        line = self.source.line(location.line)
        append = self._append_flag(keys, item)
        appends, replaces = self._overrides(keys, RULE_APPENDABLE, RULE_REPLACEABLE)
        if append and (appends or replaces):
            raise self._fail("'override' and 'append: true' cannot be used together; use only 'override'", item)
        if ("rule", name) in self.broken and (append or appends or replaces or set(keys) <= {"rule", "enabled"}):
            return  # changes to a rule whose definition failed: already reported
        if appends or replaces:
            self._read_rule_override(item, keys, name, location, line, appends, replaces)
        elif append:
            update = RuleUpdate(name, location, line)
            if "condition" in keys:
                update.condition = self._scalar(keys, "condition", item)
            if "exceptions" in keys:
                update.exceptions = self._exceptions(keys, item, appending=True)
            self._collect(lambda: self.collector.append_rule(update), item)
        elif not any(key in keys for key in ("condition", "output", "desc", "priority")):
            if "enabled" not in keys:
                raise self._fail(
                    f"rule '{name}' needs condition, output, priority and desc (or only 'enabled' to turn an "
                    "existing rule on or off, or 'override' to change one)",
                    item,
                )
            enabled = self._bool(keys, "enabled", item, required=True)
            self._warn("deprecated-enabled", WARNING_ENABLED, keys["enabled"][0])
            self._collect(lambda: self.collector.enable_rule(name, enabled), item)
        else:
            try:
                self._define_rule(item, keys, name, location, line)
            except _ItemError:
                self.broken.add(("rule", name))
                raise
            self.broken.discard(("rule", name))

    def _define_rule(self, item: Node, keys, name: str, location, line: str) -> None:
        missing = [key for key in ("condition", "output", "priority", "desc") if key not in keys]
        if missing:
            listed = ", ".join(f"'{key}'" for key in missing)
            raise self._fail(f"rule '{name}' is missing required key{'s' if len(missing) > 1 else ''} {listed}", item)
        info = RuleInfo(name, location, line)
        info.condition = [self._scalar(keys, "condition", item)]
        output = self._scalar(keys, "output", item)
        info.output, info.output_parts = output.text.strip(), [output]
        info.desc = self._string(keys, "desc", item).strip()
        info.priority = self._priority(keys, item)
        source = self._scalar(keys, "source", item, required=False)
        if source is not None:
            info.source = source.text.strip()
        for key, attribute in (("enabled", "enabled"), ("warn_evttypes", "warn_evttypes"), ("skip-if-unknown-filter", "skip_if_unknown_filter")):
            value = self._bool(keys, key, item)
            if value is not None:
                setattr(info, attribute, value)
        info.tags = set(self._strings(keys, "tags", item) or ())
        info.exceptions = self._exceptions(keys, item, appending=False)
        if not self.known_source(info.source):
            where = source.node if source is not None else item
            if not self.skip_unknown_sources:
                raise self._fail(f"unknown source '{info.source}' for rule '{name}'", where)
            self._warn("unknown-source", f"unknown source '{info.source}'; rule '{name}' is skipped", where)
            info.unknown_source = True
        self._collect(lambda: self.collector.define_rule(info), item)

    def _priority(self, keys, item: Node) -> Priority:
        scalar = self._scalar(keys, "priority", item)
        try:
            return Priority.parse(scalar.text)
        except ValueError as error:
            raise self._fail(str(error), scalar.node) from None

    def _read_rule_override(self, item, keys, name, location, line, appends: set[str], replaces: set[str]) -> None:
        expected = {key for key in (*RULE_APPENDABLE, *RULE_REPLACEABLE) if key in keys}
        for operation, chosen in (("append", appends), ("replace", replaces)):
            for key in sorted(chosen):
                if key not in expected:
                    raise self._fail(
                        f"{'an' if operation == 'append' else 'a'} {operation} override for '{key}' was given but the item has no '{key}' key",
                        keys["override"][0],
                    )
        for key in sorted(expected - appends - replaces):
            raise self._fail(f"key '{key}' has no matching entry under 'override' (e.g. '{key}: replace')", keys[key][0])
        for operation, chosen in (("append", appends), ("replace", replaces)):
            if not chosen:
                continue
            update = RuleUpdate(name, location, line)
            if "condition" in chosen:
                update.condition = self._scalar(keys, "condition", item)
            if "exceptions" in chosen:  # a replace defines the exceptions anew: each needs its fields
                update.exceptions = self._exceptions(keys, item, appending=operation == "append")
            if "output" in chosen:
                update.output_part = self._scalar(keys, "output", item)
                update.output = update.output_part.text.strip()
            if "desc" in chosen:
                update.desc = self._string(keys, "desc", item).strip()
            if "tags" in chosen:
                update.tags = self._strings(keys, "tags", item)
            if "priority" in chosen:
                update.priority = self._priority(keys, item)
            if "enabled" in chosen:
                update.enabled = self._bool(keys, "enabled", item, required=True)
            if "warn_evttypes" in chosen:
                update.warn_evttypes = self._bool(keys, "warn_evttypes", item, required=True)
            if "skip-if-unknown-filter" in chosen:
                update.skip_if_unknown_filter = self._bool(keys, "skip-if-unknown-filter", item, required=True)
            action = self.collector.append_rule if operation == "append" else self.collector.replace_rule
            self._collect(lambda: action(update), item)

    # -- exceptions ---------------------------------------------------

    def _exceptions(self, keys, item: Node, appending: bool) -> list[ExceptionInfo]:
        if "exceptions" not in keys or _is_null(keys["exceptions"][1]):
            return []
        node = keys["exceptions"][1]
        if not isinstance(node, SequenceNode):
            raise self._fail(f"'exceptions' must be a list of {{name, fields, comps, values}}, got {describe_kind(node)}", node)
        out: list[ExceptionInfo] = []
        for entry in node.value:
            if not isinstance(entry, MappingNode):
                raise self._fail(f"an exception must be a mapping with name, fields, comps and values, got {describe_kind(entry)}", entry)
            entry_keys = self._mapping(entry)
            name = self._string(entry_keys, "name", entry)
            for key, (key_node, _) in entry_keys.items():
                if key not in EXCEPTION_KEYS:
                    self._warn("unknown-key", f"unknown key '{key}' in exception '{name}'; it is ignored", key_node)
            if any(other.name == name for other in out):  # Falco warns and keeps both; appends go to the first
                self._warn("exception-name-not-unique", f"exception '{name}' is defined twice in the same rule "
                           "(values appended later go to the first)", entry_keys["name"][1])
            location = self.source.location(entry)
            info = ExceptionInfo(name, location, self.source.line(location.line))
            if "fields" in entry_keys and not _is_null(entry_keys["fields"][1]):
                info.fields = self._entry(entry_keys["fields"][1], "fields")
            elif not appending:
                raise self._fail(f"exception '{name}' needs 'fields' (a field or a list of fields)", entry)
            if "comps" in entry_keys and not _is_null(entry_keys["comps"][1]):
                info.comps = self._entry(entry_keys["comps"][1], "comps")
            if "values" in entry_keys:
                values = entry_keys["values"][1]
                if not isinstance(values, SequenceNode):
                    raise self._fail(f"exception '{name}': 'values' must be a list", values if not _is_null(values) else entry_keys["values"][0])
                info.values = [self._entry(value, "values") for value in values.value]
                info.values_given = True
            elif appending:
                self._warn("exception-no-values", f"exception '{name}' is appended or replaced with no values", entry)
            out.append(info)
        return out

    def _entry(self, node: Node, key: str, depth: int = 1) -> Entry:
        location = self.source.location(node)
        if isinstance(node, ScalarNode) and not _is_null(node):
            if node.value == "":
                raise self._fail(f"an exception's '{key}' may not hold an empty string", node)
            return Entry(item=node.value, scalar=ScalarText(self.source, node), location=location)
        if isinstance(node, SequenceNode):
            if depth > MAX_EXCEPTION_NESTING:  # YAML nests ~1000 deep: the recursion below would overflow
                raise self._fail(f"an exception's '{key}' nests lists too deeply (a value is a string, or a list of strings)", node)
            where = FixedText((location, self.source.line(location.line)))
            return Entry(items=[self._entry(child, key, depth + 1) for child in node.value], scalar=where, location=location)
        raise self._fail(f"an exception's '{key}' must hold strings or lists of strings, got {'nothing' if _is_null(node) else describe_kind(node)}", node)
