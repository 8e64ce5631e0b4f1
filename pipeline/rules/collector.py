"""Falco's rule collector: what defining, appending to, overriding and enabling
lists, macros and rules does, across files, before anything is compiled.

Semantics follow Falco's ``rule_loader::collector``:

* Every define, append and override takes the next number from one counter
  shared by lists, macros and rules. An item's ``index`` is the number of its
  *first* definition (a redefinition replaces it in place, so rules keep the
  order in which they first appeared); its ``visibility`` is the number of its
  latest define/append/override. A macro or list may only use macros or lists
  whose index is below its visibility (defined before it, or before its latest
  append); rules may use any macro or list, even one defined later.
* Redefining replaces the whole item; a rule may not change its source that way.
* Appending to a list adds items; to a macro or rule condition adds
  ``" " + text`` (the text is re-parsed whole at compile time); to a rule's
  output/desc adds ``" " + text``; tags are unioned; exceptions with a known
  name get more values, others are added.
* ``override: {key: replace}`` replaces only the keys named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import SourceLocation
from pipeline.rules.exceptions import ExceptionInfo, ExceptionProblem, validate
from pipeline.rules.model import Priority, PluginRequirement
from pipeline.rules.yaml_source import TextMap


class CollectError(ValueError):
    """A define/append/override that Falco rejects; the reader adds the position."""

    def __init__(self, message: str, location: SourceLocation | None = None, source_line: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.source_line = source_line


@dataclass(slots=True)
class ListInfo:
    name: str
    items: list[str]
    location: SourceLocation
    source_line: str
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class MacroInfo:
    name: str
    condition: list[TextMap]  # the definition's text, then each append
    location: SourceLocation
    source_line: str
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class RuleInfo:
    name: str
    location: SourceLocation
    source_line: str
    desc: str = ""
    condition: list[TextMap] = field(default_factory=list)
    output: str = ""
    output_parts: list[TextMap] = field(default_factory=list)  # where the output's pieces are written
    priority: Priority = Priority.DEBUG
    source: str = "syscall"
    enabled: bool = True
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    unknown_source: bool = False  # kept (appends still apply) but never compiled, as in Falco
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class RuleUpdate:
    """The keys an append or a replace override carries (None: not given)."""

    name: str
    location: SourceLocation
    source_line: str
    condition: TextMap | None = None
    output: str | None = None
    output_part: TextMap | None = None
    desc: str | None = None
    tags: list[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None

    def has_any_value(self) -> bool:
        return any(
            value is not None
            for value in (
                self.condition, self.output, self.desc, self.tags, self.exceptions,
                self.priority, self.enabled, self.warn_evttypes, self.skip_if_unknown_filter,
            )
        )


class Collector:
    """Everything read so far, from every file, in Falco's order."""

    def __init__(self) -> None:
        self.lists: dict[str, ListInfo] = {}
        self.macros: dict[str, MacroInfo] = {}
        self.rules: dict[str, RuleInfo] = {}
        self.required_engine_version: tuple[tuple[int, int, int], str] | None = None
        self.required_plugin_versions: list[tuple[PluginRequirement, ...]] = []
        self._counter = 0

    def _next(self) -> int:
        number = self._counter
        self._counter += 1
        return number

    # -- requirements -------------------------------------------------

    def require_engine_version(self, version: tuple[int, int, int], text: str) -> None:
        if self.required_engine_version is None or self.required_engine_version[0] < version:
            self.required_engine_version = (version, text)

    def require_plugins(self, alternatives: tuple[PluginRequirement, ...]) -> None:
        names = [alternative.name for alternative in alternatives]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise CollectError(f"defined multiple alternative version requirements for plugin '{duplicated[0]}'")
        self.required_plugin_versions.append(alternatives)

    # -- lists and macros ---------------------------------------------

    def define_list(self, info: ListInfo) -> None:
        _define(self.lists, info, self._next())

    def append_list(self, info: ListInfo) -> None:
        previous = _existing(self.lists, "list", info.name, "uses 'append' (or 'override: {items: append}')")
        previous.items.extend(info.items)
        previous.visibility = self._next()

    def define_macro(self, info: MacroInfo) -> None:
        _define(self.macros, info, self._next())

    def append_macro(self, info: MacroInfo) -> None:
        previous = _existing(self.macros, "macro", info.name, "uses 'append' (or 'override: {condition: append}')")
        previous.condition.extend(info.condition)
        previous.visibility = self._next()

    # -- rules --------------------------------------------------------

    def define_rule(self, info: RuleInfo) -> None:
        previous = self.rules.get(info.name)
        if previous is not None and previous.source != info.source:
            raise CollectError(
                f"rule '{info.name}' is redefined with source '{info.source}' but was defined with source "
                f"'{previous.source}'; a redefinition may not change the source"
            )
        for exception in info.exceptions:
            _validate_exception(exception)
        _define(self.rules, info, self._next())

    def append_rule(self, update: RuleUpdate) -> None:
        previous = _existing(self.rules, "rule", update.name, "uses 'append' (or 'override: {key: append}')")
        if not update.has_any_value():
            raise CollectError(f"appended rule '{update.name}' must have a condition or exceptions to append")
        if update.condition is not None and update.condition.text:
            previous.condition.append(update.condition)
        if update.output:
            previous.output += " " + update.output
            if update.output_part is not None:
                previous.output_parts.append(update.output_part)
        if update.desc:
            previous.desc += " " + update.desc
        if update.tags is not None:
            previous.tags.update(update.tags)
        for exception in update.exceptions or ():
            existing = next((e for e in previous.exceptions if e.name == exception.name), None)
            if existing is None:
                if exception.fields is None:
                    raise CollectError(
                        f"exception '{exception.name}' is new to rule '{update.name}', so it needs 'fields'",
                        exception.location, exception.source_line,
                    )
                if not exception.values:
                    raise CollectError(
                        f"exception '{exception.name}' is new to rule '{update.name}', so it needs 'values'",
                        exception.location, exception.source_line,
                    )
                _validate_exception(exception)
                previous.exceptions.append(exception)
            else:
                if exception.fields is not None:
                    raise CollectError(
                        f"cannot append 'fields' to existing exception '{exception.name}', only values",
                        exception.location, exception.source_line,
                    )
                if exception.comps is not None:
                    raise CollectError(
                        f"cannot append 'comps' to existing exception '{exception.name}', only values",
                        exception.location, exception.source_line,
                    )
                existing.values.extend(exception.values)
        previous.visibility = self._next()

    def replace_rule(self, update: RuleUpdate) -> None:
        previous = _existing(self.rules, "rule", update.name, "uses 'override: {key: replace}'")
        if not update.has_any_value():
            raise CollectError(f"rule '{update.name}' must have at least one key to replace")
        if update.condition is not None:
            previous.condition = [update.condition]
        if update.output is not None:
            previous.output = update.output
            previous.output_parts = [update.output_part] if update.output_part is not None else []
        if update.desc is not None:
            previous.desc = update.desc
        if update.tags is not None:
            previous.tags = set(update.tags)
        if update.exceptions is not None:
            for exception in update.exceptions:
                _validate_exception(exception)
            previous.exceptions = list(update.exceptions)
        if update.priority is not None:
            previous.priority = update.priority
        if update.enabled is not None:
            previous.enabled = update.enabled
        if update.warn_evttypes is not None:
            previous.warn_evttypes = update.warn_evttypes
        if update.skip_if_unknown_filter is not None:
            previous.skip_if_unknown_filter = update.skip_if_unknown_filter
        previous.visibility = self._next()

    def enable_rule(self, name: str, enabled: bool) -> None:
        previous = _existing(self.rules, "rule", name, "has only 'enabled'")
        previous.enabled = enabled


def _existing(infos: dict, kind: str, name: str, change: str):
    """The {kind} defined earlier as `name`, which an item that `change`s it needs (CollectError if none)."""
    previous = infos.get(name)
    if previous is None:
        raise CollectError(f"{kind} '{name}' {change} but no {kind} by that name exists yet")
    return previous


def _define(infos: dict, info, number: int) -> None:
    previous = infos.get(info.name)
    info.index = previous.index if previous is not None else number
    info.visibility = number
    infos[info.name] = info  # an existing key keeps its place in the dict: Falco's in-place replace


def _validate_exception(exception: ExceptionInfo) -> None:
    try:
        validate(exception)
    except ExceptionProblem as problem:
        where, line = exception.location, exception.source_line
        if problem.where is not None and problem.where.scalar is not None:
            where, line = problem.where.scalar.locate(0)
        raise CollectError(problem.message, where, line) from None
