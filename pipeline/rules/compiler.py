"""Condition ASTs -> fast Python functions, built once at load time.

The compiler writes Python source and ``compile()``s it. One generated
function evaluates a whole *bucket* of rules (all the rules that can match
one event type) in file order, so work is shared across rules:

* each distinct field (and each distinct transform of one) is read at most
  once per event, memoised in a local with the walrus trick
  ``(_f3 if _f3 is not _U else (_f3 := e.get('proc.name')))``; a field whose
  :class:`BoundField` has a ``flat_key`` is read with ``e.get`` inline, one
  with a ``native_key`` (ints, bools) inline when the value already has its
  class, through its extractor otherwise;
* each macro used more than once is computed at most once per event, the same way;
* constants (sets, compiled globs and regexes, networks, typed literals) are
  globals of the generated module, built here once;
* ``evt.type`` tests are folded to True/False when the bucket is for one known
  event type, so most rules never appear in most buckets.

Fields are read as ``None`` when missing (``e.get``), or :data:`MISSING` from
extractors; a comparison on a missing field is false (``!=`` included), and
``not`` of it is true, as in Falco. The generated code assumes values have
their declared types; if an odd event makes it raise, the engine re-evaluates
that event with the reference evaluator, which never does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from pipeline.errors import RuleLoadError, SourceLocation
from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldRegistry, FieldType, UnknownField
from pipeline.rules import operators as ops
from pipeline.rules.comparable import operator_problem
from pipeline.rules.ast import (
    LIST_OPERATORS,
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
    Pos,
    Transform,
)

EVT_TYPE = "evt.type"
_EVTTYPE_OPS = frozenset({"=", "==", "!=", "in", "intersects"})
MAX_DEPTH = 90
_TEXT_INLINE = frozenset({"contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex", "pmatch"})


class ConditionCompileError(RuleLoadError):
    """A condition that parses but cannot be compiled: a literal of the wrong type,
    a bad regex, an unknown field or macro, an operator the field does not support.

    ``location`` is within the condition text (``path`` None); ``macro`` names
    the macro whose condition holds the problem, when it is not the rule's own.
    """

    def __init__(self, message: str, pos: Pos | None, macro: str | None = None) -> None:
        location = SourceLocation(None, pos.line, pos.col) if pos is not None else None
        super().__init__(message if macro is None else f"{message} (in macro '{macro}')", location)
        self.pos = pos
        self.macro = macro


class _Unset:
    """Marks a memo local not computed yet for this event (never a field value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class ValueType:
    type: FieldType
    is_list: bool
    any_of: bool = False  # a list of candidates (ancestors): a comparison holds when one candidate's does


# ----------------------------------------------------------------- evt.type folding


@dataclass(frozen=True, slots=True)
class EvttypeContext:
    """What a bucket knows about ``evt.type``: exactly ``value``, or (``value`` None)
    a present type that is none of ``named``."""

    value: str | None
    named: frozenset[str]


def evttype_test(node: Compare) -> tuple[frozenset[str], bool] | None:
    """(types named, negated) when ``node`` tests evt.type against literals, else None."""
    if not (isinstance(node.left, FieldRef) and node.left.name == EVT_TYPE and node.left.arg is None):
        return None
    if node.op not in _EVTTYPE_OPS:
        return None
    right = node.right
    if isinstance(right, Literal):
        values = frozenset({right.text})
    elif isinstance(right, ListValue):
        values = frozenset(item.text for item in right.items)
    else:
        return None
    return values, node.op == "!="


def fold(node: Node, ctx: EvttypeContext, macros: Mapping[str, Node], memo: dict[str, Node | bool]) -> Node | bool:
    """``node`` with its evt.type tests replaced by what ``ctx`` says they are, simplified.

    ``memo`` receives the folded body of every macro reached (per bucket)."""
    if isinstance(node, Compare):
        test = evttype_test(node)
        if test is None:
            return node
        values, negated = test
        hit = ctx.value in values if ctx.value is not None else False
        return (not hit) if negated else hit
    if isinstance(node, MacroRef):
        if node.name not in memo:
            body = macros.get(node.name)
            if body is None:
                return node  # reported by the code generator
            memo[node.name] = node  # cycle guard while folding
            memo[node.name] = fold(body, ctx, macros, memo)
        folded = memo[node.name]
        return folded if isinstance(folded, bool) else node
    if isinstance(node, Not):
        inner = fold(node.operand, ctx, macros, memo)
        return (not inner) if isinstance(inner, bool) else Not(inner, node.pos)
    if isinstance(node, (And, Or)):
        absorbing = isinstance(node, Or)  # True absorbs an or, False absorbs an and
        kept: list[Node] = []
        for item in node.items:
            folded = fold(item, ctx, macros, memo)
            if isinstance(folded, bool):
                if folded is absorbing:
                    return absorbing
                continue
            kept.append(folded)
        if not kept:
            return not absorbing
        if len(kept) == 1:
            return kept[0]
        return type(node)(tuple(kept), node.pos)
    raise TypeError(f"not a condition node: {node!r}")


def named_evttypes(nodes: Iterable[Node], macros: Mapping[str, Node]) -> frozenset[str]:
    """Every event type named in an evt.type test reachable from ``nodes``."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Compare):
            test = evttype_test(node)
            if test is not None:
                found |= test[0]
        elif isinstance(node, MacroRef):
            if node.name not in seen and node.name in macros:
                seen.add(node.name)
                stack.append(macros[node.name])
        elif isinstance(node, Not):
            stack.append(node.operand)
        elif isinstance(node, (And, Or)):
            stack.extend(node.items)
    return frozenset(found)


# ----------------------------------------------------------------- binding and typing


class FieldBinder:
    """Binds field references once per registry, turning failures into positioned errors."""

    def __init__(self, registry: FieldRegistry) -> None:
        self.registry = registry
        self._bound: dict[tuple[str, str | None], BoundField] = {}

    def bind(self, ref: FieldRef, macro: str | None) -> BoundField:
        key = (ref.name, ref.arg)
        bound = self._bound.get(key)
        if bound is None:
            try:
                bound = self.registry.bind(ref.name, ref.arg)
            except UnknownField as error:
                raise ConditionCompileError(str(error).strip("'\""), ref.pos, macro) from None
            self._bound[key] = bound
        return bound

    def value_type(self, expr: FieldRef | Transform, macro: str | None) -> ValueType:
        if isinstance(expr, FieldRef):
            bound = self.bind(expr, macro)
            return ValueType(bound.type, bound.is_list, bound.is_list and bound.any_of)
        inner = self.value_type(expr.operand, macro)
        if expr.name == "len":
            # len of each candidate for an any-of value; of the whole list otherwise
            return ValueType(FieldType.INT, inner.any_of, inner.any_of)
        if inner.type not in (FieldType.STRING, FieldType.BYTES, FieldType.IPADDR, FieldType.IPNET):
            raise ConditionCompileError(f"transformer '{expr.name}' needs a text field", expr.pos, macro)
        return ValueType(FieldType.STRING, inner.is_list, inner.any_of)


def as_extracted(expr: FieldRef | Transform, binder: FieldBinder, macro: str | None) -> FieldRef | Transform:
    """The field as ``val()`` reads it: an any-of ancestor field (``proc.aname``) is extracted
    with no ancestor step, i.e. the process itself (``proc.aname[0]``), as libsinsp does."""
    if isinstance(expr, FieldRef):
        bound = binder.bind(expr, macro)
        return replace(expr, arg="0") if bound.any_of and bound.definition.arg is ArgKind.OPTIONAL_INDEX else expr
    return replace(expr, operand=as_extracted(expr.operand, binder, macro))


def field_key(expr: FieldRef | Transform, binder: FieldBinder, macro: str | None) -> str:
    if isinstance(expr, FieldRef):
        return binder.bind(expr, macro).key
    return f"{expr.name}({field_key(expr.operand, binder, macro)})"


# ----------------------------------------------------------------- code generation


class _Module:
    """The namespace of one generated module: helpers plus deduplicated constants."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_U": UNSET,
            "_M": MISSING,
            "_E": (),
            "_any_text": ops.any_text,
            "_bytes_op": ops.bytes_op,
            "_ip_within": ops.ip_within,
            "_ip_list": ops.ip_list,
            "_cmpv": ops.compare_values,
            "_cmpv_any": ops.compare_any_value,
            "_t_len_each": ops.t_len_each,
            "_text_of": ops.text_of,
        }
        for name, function in ops.TRANSFORMS.items():
            self.namespace[f"_t_{name}"] = function
        self._by_value: dict[Any, str] = {}
        self._counter = itertools.count()
        self.functions: list[str] = []

    def const_identity(self, value: Any, hint: str = "c") -> str:
        """A constant for this very object (rule results: equal rules stay distinct)."""
        name = f"_{hint}{next(self._counter)}"
        self.namespace[name] = value
        return name

    def const(self, value: Any, hint: str = "c") -> str:
        try:
            key = (type(value), value)
            hash(key)
        except TypeError:
            key = ("id", id(value))
        name = self._by_value.get(key)
        if name is None:
            name = f"_{hint}{next(self._counter)}"
            self._by_value[key] = name
            self.namespace[name] = value
        return name

    def build(self, name_hint: str = "peregrine-conditions") -> dict[str, Any]:
        source = "\n\n".join(self.functions) + "\n"
        code = compile(source, f"<{name_hint}>", "exec")
        namespace = dict(self.namespace)
        exec(code, namespace)  # noqa: S102 - our own generated source, built from parsed ASTs only
        namespace["__source__"] = source
        return namespace


@dataclass(slots=True)
class _Slot:
    key: str
    uses: int = 0
    local: str | None = None


@dataclass(slots=True)
class _FunctionGen:
    """Generates one function; knows which fields and macros to memoise in it."""

    module: _Module
    binder: FieldBinder
    macros: Mapping[str, Node]  # raw macro bodies (for error context)
    folded_macros: Mapping[str, Node | bool]  # the bodies to generate from
    slots: dict[str, _Slot] = field(default_factory=dict)
    macro_uses: dict[str, int] = field(default_factory=dict)
    macro_locals: dict[str, str] = field(default_factory=dict)
    macro_code: dict[str, str] = field(default_factory=dict)
    macro_expanding: list[str] = field(default_factory=list)
    locals_in_order: list[str] = field(default_factory=list)
    depth: int = 0

    # -- pass 1: count uses

    def count(self, node: Node | bool, macro: str | None = None) -> None:
        if isinstance(node, bool):
            return
        if isinstance(node, Compare):
            self._count_field(node.left, macro)
            if isinstance(node.right, FieldValue):
                self._count_field(as_extracted(node.right.field, self.binder, macro), macro)
        elif isinstance(node, MacroRef):
            if node.name in self.macro_expanding:
                raise ConditionCompileError(f"macro '{node.name}' refers to itself", node.pos, macro)
            seen = node.name in self.macro_uses
            self.macro_uses[node.name] = self.macro_uses.get(node.name, 0) + 1
            if not seen:
                body = self._macro_body(node)
                self.macro_expanding.append(node.name)
                self.count(body, node.name)
                self.macro_expanding.pop()
        elif isinstance(node, Not):
            self.count(node.operand, macro)
        elif isinstance(node, (And, Or)):
            for item in node.items:
                self.count(item, macro)

    def _count_field(self, expr: FieldRef | Transform, macro: str | None) -> None:
        key = field_key(expr, self.binder, macro)
        slot = self.slots.setdefault(key, _Slot(key))
        slot.uses += 1
        if isinstance(expr, Transform):
            self._count_field(expr.operand, macro)

    def _macro_body(self, ref: MacroRef) -> Node | bool:
        body = self.folded_macros.get(ref.name)
        if body is None:
            body = self.macros.get(ref.name)
        if body is None:
            raise ConditionCompileError(f"unknown macro '{ref.name}'", ref.pos)
        return body

    # -- pass 2: expressions

    def expr(self, node: Node | bool, macro: str | None = None) -> str:
        # Python's parser refuses more than 200 nested parentheses; each level here adds at most 2.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ConditionCompileError(
                    f"condition is nested too deeply to compile (more than {MAX_DEPTH} levels, macros included)",
                    getattr(node, "pos", None),
                    macro,
                )
            return self._expr(node, macro)
        finally:
            self.depth -= 1

    def _expr(self, node: Node | bool, macro: str | None = None) -> str:
        if node is True:
            return "True"
        if node is False:
            return "False"
        if isinstance(node, Compare):
            return self._compare(node, macro)
        if isinstance(node, MacroRef):
            if self.macro_uses.get(node.name, 0) < 2:
                return self.expr(self._macro_body(node), node.name)
            local = self.macro_locals.get(node.name)
            if local is None:
                local = f"_m{len(self.macro_locals)}"
                self.macro_locals[node.name] = local
                self.locals_in_order.append(local)
                self.macro_code[local] = self.expr(self._macro_body(node), node.name)
            return f"({local} if {local} is not _U else ({local} := {self.macro_code[local]}))"
        if isinstance(node, Not):
            return f"(not {self.expr(node.operand, macro)})"
        if isinstance(node, And):
            return "(" + " and ".join(self.expr(item, macro) for item in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.expr(item, macro) for item in node.items) + ")"
        raise TypeError(f"not a condition node: {node!r}")

    def read(self, expr: FieldRef | Transform, macro: str | None) -> tuple[str, str]:
        """(expression giving the value, name of its 'missing' marker: 'None' or '_M')."""
        key = field_key(expr, self.binder, macro)
        if isinstance(expr, FieldRef):
            bound = self.binder.bind(expr, macro)
            if bound.flat_key is not None:
                code, absent = f"e.get({bound.flat_key!r})", "None"
            elif bound.native_key is not None and bound.native_class is not None:
                # the value as sent when it already has its type (an int, a bool); else the extractor
                native = self.module.const(bound.native_class, "k")
                extract = self.module.const(bound.extract, "x")
                unless = "" if bound.native_except is None else f" and _v != {self.module.const(bound.native_except, 'c')}"
                code, absent = f"(_v if (_v := e.get({bound.native_key!r})).__class__ is {native}{unless} else {extract}(e))", "_M"
            else:
                code, absent = f"{self.module.const(bound.extract, 'x')}(e)", "_M"
        else:
            operand, _ = self.read(expr.operand, macro)
            each = expr.name == "len" and self.binder.value_type(expr.operand, macro).any_of
            code, absent = f"_t_{'len_each' if each else expr.name}({operand})", "None"
        slot = self.slots.get(key)
        if slot is None or slot.uses < 2:
            return code, absent
        if slot.local is None:
            slot.local = f"_f{len([s for s in self.slots.values() if s.local])}"
            self.locals_in_order.append(slot.local)
        local = slot.local
        return f"({local} if {local} is not _U else ({local} := {code}))", absent

    def _literal(self, node: Compare, vtype: ValueType, op: str, lit: Literal, macro: str | None) -> Any:
        try:
            return ops.typed_literal(lit.text, vtype.type, op)
        except ops.LiteralTypeError as error:
            field = field_key(node.left, self.binder, macro)
            raise ConditionCompileError(
                f"{error}: compared with {field} (type {vtype.type.value}) by '{op}'", lit.pos, macro
            ) from None

    def _compare(self, node: Compare, macro: str | None) -> str:
        op = node.op
        vtype = self.binder.value_type(node.left, macro)
        problem = operator_problem(
            field_key(node.left, self.binder, macro), vtype.type, vtype.is_list and not vtype.any_of, op
        )
        if problem is not None:
            raise ConditionCompileError(problem, node.pos, macro)
        value, absent = self.read(node.left, macro)
        if absent == "None":
            present = "(_t := {v}) is not None"
        else:
            present = "(_t := {v}) is not _M and _t is not None"
        if op == "exists":
            if vtype.is_list:
                return f"(not not {value})"
            return "(" + present.format(v=value) + ")"
        right = node.right
        if isinstance(right, FieldValue):
            other_field = as_extracted(right.field, self.binder, macro)
            other, _ = self.read(other_field, macro)
            self.binder.value_type(other_field, macro)
            if op in ("pmatch", "regex"):
                raise ConditionCompileError(f"operator '{op}' cannot compare with another field", node.pos, macro)
            if vtype.type is FieldType.IPNET:
                raise ConditionCompileError(
                    f"{field_key(node.left, self.binder, macro)} is an IP network field: Falco cannot compare it "
                    "with another field (write the networks as values)", node.pos, macro,
                )
            return f"_cmpv{'_any' if vtype.any_of else ''}({op!r}, {value}, {other})"
        if right is None:
            raise ConditionCompileError(f"operator '{op}' needs a value", node.pos, macro)
        if op in LIST_OPERATORS:
            items = right.items if isinstance(right, ListValue) else (right,)
            return self._list_compare(node, vtype, value, present, items, macro)
        if isinstance(right, ListValue):
            raise ConditionCompileError(f"operator '{op}' takes one value, not a list", right.pos, macro)
        return self._scalar_compare(node, vtype, value, present, right, macro)

    def _scalar_compare(self, node: Compare, vtype: ValueType, value: str, present: str, right: Literal, macro: str | None) -> str:
        op = node.op
        const = self.module.const
        if op in ops.BYTE_OPERATORS or (vtype.type is FieldType.BYTES and op in ops.BYTES_TEXT_OPERATORS):
            lit = self._literal(node, vtype, op, right, macro)
            return f"_bytes_op({value}, {op!r}, {const(lit, 'b')})"
        if vtype.type in ops.IP_TYPES and op not in _TEXT_INLINE:
            net = self._literal(node, vtype, op, right, macro)  # the operator is one an IP takes (comparable.py)
            nets = const(ops.Networks((net,)), "n")
            if vtype.any_of and op == "!=":
                return f"((_t := {value}) and any(_ip_within(_x, {nets}) is False for _x in _t))"
            if vtype.is_list:
                return f"_ip_list({value}, {nets}, False)" if op != "!=" else f"((_t := {value}) and not _ip_list(_t, {nets}, False))"
            return f"(_ip_within({value}, {nets}) is {op != '!='})"
        if op in _TEXT_INLINE:
            return self._text_compare(op, vtype, value, present, right, macro)
        lit = self._literal(node, vtype, op, right, macro)
        lit_code = repr(lit) if isinstance(lit, (str, int, bool)) else const(lit)
        if vtype.is_list:
            if op in ("=", "=="):
                return f"((_t := {value}) and {lit_code} in _t)"
            if op == "!=" and vtype.any_of:
                return f"((_t := {value}) and any(_x != {lit_code} for _x in _t))"
            if op == "!=":
                return f"((_t := {value}) and {lit_code} not in _t)"
            return f"((_t := {value}) and any(_x {op} {lit_code} for _x in _t))"
        if vtype.type is FieldType.BOOL:
            if op in ("=", "=="):
                return f"({value} is {lit!r})"
            return f"({value} is {(not lit)!r})"  # != (a boolean takes no other operator here)
        if op in ("=", "=="):
            return f"({value} == {lit_code})"
        return "(" + present.format(v=value) + f" and _t {op} {lit_code})"

    def _text_compare(self, op: str, vtype: ValueType, value: str, present: str, right: Literal, macro: str | None) -> str:
        const = self.module.const
        text = right.text
        if op == "pmatch":
            matcher = ops.pmatch_matcher([text])
        elif op in ("glob", "iglob"):
            matcher = ops.glob_matcher(text, op == "iglob")
        elif op == "regex":
            try:
                matcher = ops.regex_matcher(text)
            except ops.LiteralTypeError as error:
                raise ConditionCompileError(str(error), right.pos, macro) from None
        else:
            matcher = None
        inline_ok = vtype.type is FieldType.STRING and not vtype.is_list
        if not inline_ok:
            predicate = ops.text_op(op, text, matcher) if op != "pmatch" else matcher
            return f"_any_text({value}, {const(predicate, 'p')})"
        head = present.format(v=value)
        if op == "contains":
            return f"({head} and {text!r} in _t)"
        if op == "icontains":
            return f"({head} and {text.lower()!r} in _t.lower())"
        if op == "startswith":
            return f"({head} and _t.startswith({text!r}))"
        if op == "endswith":
            return f"({head} and _t.endswith({text!r}))"
        return f"({head} and {const(matcher, 'g')}(_t))"

    def _list_compare(self, node: Compare, vtype: ValueType, value: str, present: str, items: Sequence[Literal], macro: str | None) -> str:
        op = node.op
        const = self.module.const
        if op == "pmatch":
            paths = [item.text for item in items]
            inline = vtype.type is FieldType.STRING and not vtype.is_list
            if inline and not any(map(ops.has_glob, paths)):
                exact, prefixes = ops.path_prefixes(paths)
                head = present.format(v=value)
                return f"({head} and (_t in {const(exact, 's')} or _t.startswith({const(prefixes, 'q')})))"
            predicate = ops.pmatch_matcher(paths)
            if inline:
                return f"({present.format(v=value)} and {const(predicate, 'g')}(_t))"
            return f"_any_text({value}, {const(predicate, 'p')})"
        if vtype.type in ops.IP_TYPES:
            nets = const(ops.Networks(self._literal(node, vtype, op, item, macro) for item in items), "n")
            if vtype.is_list:
                return f"_ip_list({value}, {nets}, {op == 'in' and not vtype.any_of})"
            return f"(_ip_within({value}, {nets}) is True)"
        members = frozenset(self._literal(node, vtype, "in", item, macro) for item in items)
        name = const(members, "s")
        if vtype.is_list:
            if op == "in" and not vtype.any_of:
                return f"((_t := {value}) and {name}.issuperset(_t))"
            return f"((_t := {value}) and not {name}.isdisjoint(_t))"
        return f"({value} in {name})"

    # -- the function

    def function(self, name: str, bodies: list[str], mode: str) -> str:
        lines = [f"def {name}(e):"]
        if self.locals_in_order:
            lines.append("    " + " = ".join(self.locals_in_order) + " = _U")
        if mode == "first":
            lines.extend(bodies)
            lines.append("    return _E")
        else:
            lines.append("    _h = _E")
            lines.extend(bodies)
            lines.append("    return _h")
        return "\n".join(lines)


# ----------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class BucketRule:
    """One rule in a bucket: what to return when it matches, and its folded condition."""

    result: Any
    condition: Node | bool


def generate_bucket(
    module: _Module,
    name: str,
    rules: Sequence[BucketRule],
    binder: FieldBinder,
    macros: Mapping[str, Node],
    folded_macros: Mapping[str, Node | bool],
    mode: str,
) -> None:
    """Add to ``module`` a function ``name(e)`` returning the matching rules' results (a tuple)."""
    gen = _FunctionGen(module, binder, macros, folded_macros)
    for rule in rules:
        gen.count(rule.condition)
    bodies = []
    for rule in rules:
        if rule.condition is False:
            continue
        hit = module.const_identity((rule.result,), "r")
        test = gen.expr(rule.condition)
        if mode == "first":
            bodies.append(f"    if {test}:\n        return {hit}")
        else:
            bodies.append(f"    if {test}:\n        _h = _h + {hit}")
    module.functions.append(gen.function(name, bodies, mode))


def check_condition(node: Node, macros: Mapping[str, Node], registry: FieldRegistry) -> None:
    """Raise ConditionCompileError if ``node`` cannot be compiled for ``registry``
    (unknown field or macro, a literal of the wrong type, a bad regex...).

    Generates the code (every check happens there) but does not compile it."""
    generate_bucket(_Module(), "_check", [BucketRule(True, node)], FieldBinder(registry), macros, {}, "first")


def compile_condition(node: Node, macros: Mapping[str, Node], registry: FieldRegistry) -> Callable[[Any], bool]:
    """One condition as a function ``event -> bool`` (no evt.type folding)."""
    module = _Module()
    binder = FieldBinder(registry)
    generate_bucket(module, "_matches", [BucketRule(True, node)], binder, macros, {}, "first")
    namespace = module.build()
    matches = namespace["_matches"]

    def condition(event: Any) -> bool:
        return bool(matches(event))

    condition.__source__ = namespace["__source__"]  # type: ignore[attr-defined]
    return condition
