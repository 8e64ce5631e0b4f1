"""Load Falco rules files into a :class:`~pipeline.rules.model.RuleSet`.

Files load in order, each extending or overriding the ones before it, as
Falco's ``-r`` options do. Reading (the YAML items -> :class:`Collector`)
happens per file; compiling happens once at the end, like Falco's
``rule_loader::compiler``:

1. lists: a list item that names a list defined before it is replaced by
   that list's items (recursively);
2. macros: each condition (with its appends) is parsed, lists are expanded
   and every macro it uses must be defined before it;
3. rules: each condition (with its appends) plus its exceptions is parsed,
   lists are expanded, macros must exist (anywhere: a rule may use a macro
   defined after it), and every field is bound against the rule's source's
   field registry. A rule with ``skip-if-unknown-filter: true`` that reads an
   unknown field is skipped with a warning instead.

Every error points into the file where the offending text is written: a
condition's (line, col) is mapped through the YAML scalar, including folded
and literal block scalars, quoted scalars and appended fragments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ConditionSyntaxError, RuleError, RuleLoadError, SourceLocation
from pipeline.rules import exceptions as falco_exceptions
from pipeline.rules.ast import And, FieldRef, Literal, Node, Not
from pipeline.rules.collector import Collector, RuleInfo
from pipeline.rules.exceptions import ExceptionProblem
from pipeline.rules.findings import Findings
from pipeline.rules.model import List, Macro, Rule, RuleSet
from pipeline.rules.parser import parse_condition
from pipeline.rules.reader import FileReader
from pipeline.rules.resolve import (
    MAX_EXPANDED_TERMS,
    ExpansionTooLarge,
    expand_lists,
    expanded_terms,
    field_refs,
    inline_macros,
    macro_refs,
    output_fields,
    restricts_event_type,
)
from pipeline.rules.yaml_source import JoinedText, SourceText, TextMap, offset_in, read_rules_file

# The sources Peregrine has field registries for; used only when the registries cannot be imported.
DEFAULT_SOURCES = frozenset({"syscall", "k8s_audit", "aws_cloudtrail"})

RegistryFor = Callable[[str], object]


def _default_registry_for() -> RegistryFor | None:
    try:
        from pipeline.fields import registry_for  # type: ignore[attr-defined]
    except ImportError:
        return None
    return registry_for


class RulesLoader:
    """Accumulates rules files in order; :meth:`load` compiles them into a RuleSet.

    ``collect_errors``: gather every error across files and raise one
    :class:`~pipeline.errors.RuleErrors` from :meth:`load` (otherwise the first
    error is raised where it is found). ``registry_for(source)`` gives a
    source's field registry (default: :func:`pipeline.fields.registry_for`);
    pass ``None`` to skip field checks. ``skip_unknown_sources``: Falco's
    behaviour for a rule whose source has no registry (a plugin's, ``okta``):
    skip it with a warning (code ``unknown-source``), so a rules directory
    shared with Falco loads; False makes it an error.
    """

    def __init__(
        self,
        *,
        collect_errors: bool = False,
        registry_for: RegistryFor | None | str = "default",
        skip_unknown_sources: bool = True,
    ) -> None:
        self.findings = Findings(collect=collect_errors)  # what reading the files found
        self.last_findings = self.findings  # reading plus the latest load()'s compile
        self.collector = Collector()
        self.registry_for: RegistryFor | None = _default_registry_for() if registry_for == "default" else registry_for  # type: ignore[assignment]
        self.skip_unknown_sources = skip_unknown_sources
        self._registries: dict[str, object | None] = {}
        self._broken: set[tuple[str, str]] = set()
        self.paths: list[str] = []

    # -- input --------------------------------------------------------

    def add_file(self, path: str | Path) -> None:
        path = str(path)
        text = read_rules_file(path, self.findings.error)
        if text is not None:
            self.add_text(text, path)

    def add_text(self, text: str, path: str | None = None) -> None:
        self.paths.append(path or "<text>")
        reader = FileReader(
            SourceText.of(text, path), self.collector, self.findings, self._known_source,
            self.skip_unknown_sources, self._broken,
        )
        reader.read()

    def _registry(self, source: str):
        if source not in self._registries:
            registry = None
            if self.registry_for is not None:
                try:
                    registry = self.registry_for(source)
                except Exception:  # noqa: BLE001 - any failure means "no such source"
                    registry = None
            self._registries[source] = registry
        return self._registries[source]

    def _known_source(self, source: str) -> bool:
        if self.registry_for is None:
            return source in DEFAULT_SOURCES
        return self._registry(source) is not None

    # -- compile ------------------------------------------------------

    def load(self) -> RuleSet:
        """Compile everything added so far. Raises the first error, or RuleErrors in collect mode."""
        compiled = _Compilation(self, self.findings.fork())
        self.last_findings = compiled.findings  # every error and warning of this load (for reports)
        ruleset = compiled.run()
        compiled.findings.raise_if_any()
        return ruleset


def load_rules(
    paths: Iterable[str | Path] | str | Path,
    *,
    collect_errors: bool = False,
    registry_for: RegistryFor | None | str = "default",
    skip_unknown_sources: bool = True,
) -> RuleSet:
    """Load rules files in order (later files extend or override earlier ones)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    loader = RulesLoader(collect_errors=collect_errors, registry_for=registry_for, skip_unknown_sources=skip_unknown_sources)
    for path in paths:
        loader.add_file(path)
    return loader.load()


def load_rules_text(text: str, path: str | None = None, **options) -> RuleSet:
    """Load rules from a string (tests, tools); ``path`` is only used in messages."""
    loader = RulesLoader(**options)
    loader.add_text(text, path)
    return loader.load()


def _locate(textmap: TextMap, offset: int) -> tuple[SourceLocation, str]:
    """Where character ``offset`` of a parsed text is; just past the end for an end-of-text error."""
    if offset >= len(textmap.text) and textmap.text:
        location, line = textmap.locate(len(textmap.text.rstrip()) - 1 if textmap.text.strip() else 0)
        return SourceLocation(location.path, location.line, location.col + 1), line
    return textmap.locate(offset)


def _at_pos(textmap: TextMap, pos) -> tuple[SourceLocation, str]:
    if pos is None:
        return textmap.locate(0)
    return _locate(textmap, offset_in(textmap.text, pos.line, pos.col))


class _Compilation:
    """One compile of a loader's collected items (kept apart so a loader can be reused)."""

    def __init__(self, loader: RulesLoader, findings: Findings) -> None:
        self.loader = loader
        self.collector = loader.collector
        self.findings = findings
        self.lists: dict[str, tuple[str, ...]] = {}
        self.used_lists: set[str] = set()
        self.used_macros: set[str] = set()
        self.parsed_macros: dict[str, tuple[Node, TextMap]] = {}
        self.broken_macros: set[str] = {name for kind, name in loader._broken if kind == "macro"}
        self.resolved_macros: dict[str, Node] = {}
        self.macro_terms: dict[str, int] = {}  # a resolved macro's terms, its macros inlined
        self._field_problems: dict[tuple[str, str], list[tuple[str, SourceLocation, str]]] = {}

    def run(self) -> RuleSet:
        self._compile_lists()
        self._compile_macros()
        rules = self._compile_rules()
        self._warn_unused()
        collector = self.collector
        return RuleSet(
            rules=tuple(rules),
            macros=MappingProxyType({
                name: Macro(name, self.parsed_macros[name][0], self.parsed_macros[name][1].text, info.location)
                for name, info in collector.macros.items()
                if name in self.resolved_macros
            }),
            lists=MappingProxyType({
                name: List(name, self.lists[name], info.location) for name, info in collector.lists.items()
            }),
            required_engine_version=collector.required_engine_version[1] if collector.required_engine_version else None,
            required_plugin_versions=tuple(collector.required_plugin_versions),
            warnings=tuple(self.findings.warnings),
            inlined_macros=MappingProxyType(dict(self.resolved_macros)),
        )

    def _error(self, cls: type[RuleError], message: str, where: tuple[SourceLocation, str]) -> None:
        self.findings.error(cls(message, where[0], where[1]))

    # -- lists ----------------------------------------------------------

    def _compile_lists(self) -> None:
        infos = self.collector.lists

        def expand(name: str, stack: tuple[str, ...]) -> tuple[str, ...]:
            if name in self.lists:
                return self.lists[name]
            info = infos[name]
            items: list[str] = []
            for item in info.items:
                ref = infos.get(item)
                if ref is not None and ref.index < info.visibility and item not in stack and item != name:
                    self.used_lists.add(item)
                    items.extend(expand(item, stack + (name,)))
                    if len(items) > MAX_EXPANDED_TERMS:  # lists naming lists twice double at each level
                        self.findings.error(RuleLoadError(
                            f"list '{name}' expands to more than {MAX_EXPANDED_TERMS:,} items (the lists it names, "
                            "and the lists they name, in full)", info.location, info.source_line))
                        items = []
                        break
                else:
                    items.append(item)
            self.lists[name] = tuple(items)
            return self.lists[name]

        for name in infos:
            expand(name, ())

    # -- conditions -----------------------------------------------------

    def _parse(self, textmap: TextMap) -> Node | None:
        try:
            return parse_condition(textmap.text)
        except ConditionSyntaxError as error:
            location = error.location or SourceLocation(None, 1, 1)
            self._error(ConditionSyntaxError, error.message, _locate(textmap, offset_in(textmap.text, location.line, location.col)))
            return None

    def _expand(self, node: Node, textmap: TextMap) -> Node | None:
        """``node`` with its lists expanded, or None once an error says why not."""
        def undefined(literal: Literal) -> None:
            self._error(
                RuleLoadError,
                f"undefined list '{literal.text}' (write a defined list's name, or a literal list such as ({literal.text}))",
                _at_pos(textmap, literal.pos),
            )

        try:
            return expand_lists(node, self.lists, self.used_lists, undefined)
        except ExpansionTooLarge as error:
            self._error(RuleLoadError, f"the lists named here expand to more than {MAX_EXPANDED_TERMS:,} items "
                        f"('{error.literal.text}', with the lists it names)", _at_pos(textmap, error.literal.pos))
            return None

    @staticmethod
    def _joined(parts: list[TextMap]) -> TextMap:
        return parts[0] if len(parts) == 1 else JoinedText(parts)

    # -- macros ---------------------------------------------------------

    def _compile_macros(self) -> None:
        infos = self.collector.macros
        for name, info in infos.items():
            textmap = self._joined(info.condition)
            node = self._parse(textmap)
            if node is None:
                self.broken_macros.add(name)
                continue
            node = self._expand(node, textmap)
            if node is None:
                self.broken_macros.add(name)
                continue
            self.parsed_macros[name] = (node, textmap)
            for ref in macro_refs(node):
                target = infos.get(ref.name)
                if target is not None and target.index < info.visibility:
                    self.used_macros.add(ref.name)
                    continue
                if ref.name in self.broken_macros:
                    continue
                if target is None:
                    message = f"undefined macro '{ref.name}' used in macro '{name}'"
                else:
                    message = (
                        f"macro '{ref.name}' is used in macro '{name}' before it is defined "
                        "(a macro may only use macros defined before it)"
                    )
                self.broken_macros.add(name)
                self._error(RuleLoadError, message, _at_pos(textmap, ref.pos))
        for name in self.parsed_macros:
            self._resolve_macro(name, ())

    def _resolve_macro(self, name: str, stack: tuple[str, ...]) -> Node | None:
        """The macro with every macro it uses inlined, or None when it (or one it uses) is broken."""
        if name in self.resolved_macros:
            return self.resolved_macros[name]
        if name not in self.parsed_macros or name in self.broken_macros:
            return None
        if name in stack:
            circle = stack[stack.index(name):]
            info = self.collector.macros[name]
            self.broken_macros.update(circle)
            self.findings.error(RuleLoadError(
                f"macro reference loop: {' -> '.join(circle + (name,))}", info.location, info.source_line
            ))
            return None
        node, _ = self.parsed_macros[name]
        targets: dict[str, Node] = {}
        for ref in macro_refs(node):
            if ref.name not in targets:
                resolved = self._resolve_macro(ref.name, stack + (name,))
                if resolved is None:
                    return None
                targets[ref.name] = resolved
        if name in self.broken_macros:
            return None
        terms = expanded_terms(node, self.macro_terms)
        if terms > MAX_EXPANDED_TERMS:  # counted before inlining: macros using the one before twice double at each level
            info = self.collector.macros[name]
            self.broken_macros.add(name)
            self.findings.error(RuleLoadError(
                f"macro '{name}' expands to more than {MAX_EXPANDED_TERMS:,} terms once the macros it uses are inlined",
                info.location, info.source_line))
            return None
        self.macro_terms[name] = terms
        self.resolved_macros[name] = inline_macros(node, targets)
        return self.resolved_macros[name]

    # -- rules ----------------------------------------------------------

    def _compile_rules(self) -> list[Rule]:
        rules: list[Rule] = []
        for info in self.collector.rules.values():
            if info.unknown_source:
                continue
            try:
                rule = self._compile_rule(info)
            except RecursionError:  # each condition is bounded (parser.MAX_NESTING); macros inlined in macros are not
                self._error(RuleLoadError, "condition is nested too deeply to compile (macros included)",
                            _locate(self._joined(info.condition), 0))
                continue
            if rule is not None:
                rules.append(rule)
        return rules

    def _compile_rule(self, info: RuleInfo) -> Rule | None:
        findings_before = len(self.findings.errors)
        if not self._exception_fields_known(info):
            return None
        textmap = self._joined(info.condition)
        condition = self._parse(textmap)
        parts: list[tuple[Node, TextMap]] = []
        if condition is not None:
            condition = self._expand(condition, textmap)
        if condition is not None:
            parts.append((condition, textmap))
        exception_parts: list[tuple[Node, TextMap]] = []
        for exception in info.exceptions:
            try:
                generated = falco_exceptions.condition_text(exception)
            except ExceptionProblem as problem:
                where = (exception.location, exception.source_line)
                if problem.where is not None and problem.where.scalar is not None:
                    where = problem.where.scalar.locate(0)
                self._error(RuleLoadError, problem.message, where)
                continue
            if generated is None:
                continue
            node = self._parse(generated)
            if node is not None:
                node = self._expand(node, generated)
            if node is not None:
                exception_parts.append((node, generated))
        if condition is None or len(self.findings.errors) > findings_before:
            return None
        all_parts = parts + exception_parts
        if not self._check_macros(info, all_parts):
            return None
        if sum(expanded_terms(node, self.macro_terms) for node, _ in all_parts) > MAX_EXPANDED_TERMS:
            self._error(RuleLoadError, f"rule '{info.name}' expands to more than {MAX_EXPANDED_TERMS:,} terms once its macros "
                        "are inlined and its lists expanded", _locate(textmap, 0))
            return None
        problems = self._unknown_fields(info.source, all_parts) + self._unknown_output_fields(info)
        if problems:
            if info.skip_if_unknown_filter:
                message, location, line = problems[0]
                self.findings.warn("unknown-field-skipped", f"rule '{info.name}' is skipped: {message}", location, line)
                return None
            for message, location, line in problems:
                self.findings.error(RuleLoadError(message, location, line))
            return None
        final = parts[0][0]
        if exception_parts:
            items = list(final.items) if isinstance(final, And) else [final]
            items.extend(Not(node, node.pos) for node, _ in exception_parts)
            final = And(tuple(items), final.pos)
        if not self._compiles(info, all_parts):
            return None
        inlined = inline_macros(final, self.resolved_macros)
        if info.source == "syscall" and info.warn_evttypes and not restricts_event_type(inlined):
            self.findings.warn(
                "no-evttype",
                f"rule '{info.name}' does not restrict evt.type, so it is evaluated for every event "
                "(a significant performance penalty)",
                info.location, info.source_line,
            )
        return Rule(
            name=info.name,
            desc=info.desc,
            condition=final,
            condition_text=falco_exceptions.falco_condition(textmap.text, info.exceptions),
            output=info.output,
            priority=info.priority,
            source=info.source,
            enabled=info.enabled,
            tags=tuple(sorted(info.tags)),
            exceptions=tuple(exception.to_model() for exception in info.exceptions),
            warn_evttypes=info.warn_evttypes,
            skip_if_unknown_filter=info.skip_if_unknown_filter,
            location=info.location,
        )

    def _check_macros(self, info: RuleInfo, parts: list[tuple[Node, TextMap]]) -> bool:
        ok = True
        for node, textmap in parts:
            for ref in macro_refs(node):
                if ref.name in self.resolved_macros:
                    self.used_macros.add(ref.name)
                    continue
                ok = False
                if ref.name in self.collector.macros:
                    self.used_macros.add(ref.name)
                    continue  # defined but broken: already reported
                if ref.name in self.broken_macros:
                    continue
                self._error(RuleLoadError, f"undefined macro '{ref.name}' used in rule '{info.name}'", _at_pos(textmap, ref.pos))
        return ok

    # -- fields ---------------------------------------------------------

    def _macro_nodes(self) -> dict[str, Node]:
        if not hasattr(self, "_macro_node_map"):
            self._macro_node_map = {name: node for name, (node, _) in self.parsed_macros.items() if name in self.resolved_macros}
        return self._macro_node_map

    def _compiles(self, info: RuleInfo, parts: list[tuple[Node, TextMap]]) -> bool:
        """Run the condition compiler's own checks (literal types, regexes, operators per field
        type) on each part, reporting its errors at their file positions."""
        check = _compiler_check()
        registry = self.loader._registry(info.source)
        if check is None or registry is None:
            return True
        check_condition, compile_error = check
        macros = self._macro_nodes()
        ok = True
        for node, textmap in parts:
            try:
                check_condition(node, macros, registry)
            except compile_error as error:
                ok = False
                macro = getattr(error, "macro", None)
                where_text = self.parsed_macros[macro][1] if macro in self.parsed_macros else textmap
                message = error.message
                self._error(RuleLoadError, f"{message} (in rule '{info.name}')" if macro else message, _at_pos(where_text, getattr(error, "pos", None)))
        return ok

    def _unknown_fields(self, source: str, parts: list[tuple[Node, TextMap]]) -> list[tuple[str, SourceLocation, str]]:
        """Every field that the source's registry cannot bind, in these parts and the macros they use."""
        registry = self.loader._registry(source)
        if registry is None:
            return []
        problems: list[tuple[str, SourceLocation, str]] = []
        seen_macros: set[str] = set()

        def check(node: Node, textmap: TextMap, context: str) -> None:
            for ref in field_refs(node):
                message = _bind_problem(registry, ref)
                if message is not None:
                    location, line = _at_pos(textmap, ref.pos)
                    problems.append((message + context, location, line))
            for ref in macro_refs(node):
                if ref.name in seen_macros or ref.name not in self.parsed_macros:
                    continue
                seen_macros.add(ref.name)
                problems.extend(self._macro_field_problems(ref.name, source, registry))

        for node, textmap in parts:
            check(node, textmap, "")
        return problems

    def _exception_fields_known(self, info: RuleInfo) -> bool:
        """Whether every field its exceptions name is one its source has; each one that is not is
        an error at the field, with or without values and whatever skip-if-unknown-filter says
        (Falco's collector checks them as it reads the rule, before anything is compiled)."""
        registry = self.loader._registry(info.source)
        if registry is None:
            return True
        ok = True
        for exception in info.exceptions:
            if exception.fields is None:
                continue
            for entry in exception.fields.items if exception.fields.is_list else [exception.fields]:
                if entry.is_list or entry.item is None:
                    continue  # a list in a list: reported as a shape error when the condition is built
                message = _exception_field_problem(registry, entry.item)
                if message is not None:
                    ok = False
                    where = entry.scalar.locate(0) if entry.scalar is not None else (exception.location, exception.source_line)
                    self._error(RuleLoadError, f"{message} (in exception '{exception.name}')", where)
        return ok

    def _unknown_output_fields(self, info: RuleInfo) -> list[tuple[str, SourceLocation, str]]:
        """Fields in the rule's output that its source cannot give (Falco rejects the output)."""
        registry = self.loader._registry(info.source)
        if registry is None:
            return []
        problems: list[tuple[str, SourceLocation, str]] = []
        for part in info.output_parts:
            for offset, name, arg in output_fields(part.text):
                message = _bind_problem(registry, FieldRef(name, arg))
                if message is not None:
                    location, line = part.locate(offset)
                    problems.append((f"{message} (in the output)", location, line))
        return problems

    def _macro_field_problems(self, name: str, source: str, registry) -> list[tuple[str, SourceLocation, str]]:
        """Unknown fields in a macro and the macros it uses, for one source (cached)."""
        key = (name, source)
        if key in self._field_problems:
            return self._field_problems[key]
        self._field_problems[key] = []  # guards against loops (already reported)
        node, textmap = self.parsed_macros[name]
        problems: list[tuple[str, SourceLocation, str]] = []
        for ref in field_refs(node):
            message = _bind_problem(registry, ref)
            if message is not None:
                location, line = _at_pos(textmap, ref.pos)
                problems.append((f"{message} (in macro '{name}')", location, line))
        seen: set[str] = set()
        for ref in macro_refs(node):
            if ref.name not in seen and ref.name in self.parsed_macros:
                seen.add(ref.name)
                problems.extend(self._macro_field_problems(ref.name, source, registry))
        self._field_problems[key] = problems
        return problems

    # -- warnings -------------------------------------------------------

    def _warn_unused(self) -> None:
        for name, info in self.collector.macros.items():
            if name not in self.used_macros:
                self.findings.warn("unused-macro", f"macro '{name}' is not used by any rule or macro", info.location, info.source_line)
        for name, info in self.collector.lists.items():
            if name not in self.used_lists:
                self.findings.warn("unused-list", f"list '{name}' is not used by any rule, macro or list", info.location, info.source_line)


def _compiler_check():
    """The condition compiler's (check_condition, ConditionCompileError), when it is available."""
    try:
        from pipeline.rules.compiler import ConditionCompileError, check_condition
    except Exception:  # noqa: BLE001 - no compiler: syntax, names and fields are still checked
        return None
    return check_condition, ConditionCompileError


def _exception_field_problem(registry, text: str) -> str | None:
    """Why an exception's field (``proc.name``, ``proc.aname[2]``) is not one of the registry's, or None."""
    try:
        node = parse_condition(f"{text} exists")
    except ConditionSyntaxError:
        node = None
    left = getattr(node, "left", None)
    if not isinstance(left, FieldRef):
        return f"'{text}' is not a field name"
    return _bind_problem(registry, left)


def _bind_problem(registry, ref: FieldRef) -> str | None:
    from pipeline.fields.registry import UnknownField

    try:
        registry.bind(ref.name, ref.arg)
    except UnknownField as error:
        return str(error.args[0]) if error.args else f"unknown field '{ref.name}'"
    return None


__all__ = ["RulesLoader", "load_rules", "load_rules_text"]
