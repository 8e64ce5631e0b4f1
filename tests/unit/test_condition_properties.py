"""Property tests: compiled conditions agree with the reference evaluator; the parser
never fails with anything but ConditionSyntaxError; render -> parse is the identity."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toy_fields import toy_registry

from pipeline.errors import ConditionSyntaxError
from pipeline.fields.registry import FieldType
from pipeline.rules.ast import And, Compare, FieldRef, FieldValue, ListValue, Literal, MacroRef, Not, Or, Transform
from pipeline.rules.compiler import ConditionCompileError, check_condition, compile_condition
from pipeline.rules.parser import parse_condition
from pipeline.rules.reference import ReferenceEvaluator
from pipeline.rules.render import render

REGISTRY = toy_registry()
BARE_WORD = re.compile(r"[^()\"'\s\x08=,]+")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXTS = ["", "a", "ab", "bash", "BaSh", "sh", "/etc", "/etc/", "/etc/passwd", "/etcx", "/", "x y", "10", "-1", "YmFzaA=="]
PATTERNS = ["*", "a*", "/etc/*", "?b", "[ab]*", "*/passwd", "*sh", "/etc/*/x"]
REGEXES = ["a.*", "[a-z]+", "b", ".*sh", "/etc/.*"]
INTS = ["-1", "0", "1", "3", "10", "0x10"]
INT_VALUES = [-1, 0, 1, 3, 10, 16, 65535]
IPS = ["10.1.2.3", "192.168.0.1", "::1", "0.0.0.0", "fe80::1"]  # an address field takes addresses
NETS = ["10.0.0.0/8", "10.1.2.3/32", "0.0.0.0/0", "fe80::/10", "::1/128"]  # a network field, networks
IP_VALUES = ["10.1.2.3", "192.168.0.1", "::1", "fe80::1", "not-an-ip", "10.0.0.0/16"]
HEX = ["61", "6162", "ff", "2f657463"]

# field name, arg, type, is_list
FIELDS: list[tuple[str, str | None, FieldType, bool]] = [
    ("proc.name", None, FieldType.STRING, False),
    ("proc.pname", None, FieldType.STRING, False),
    ("fd.name", None, FieldType.STRING, False),
    ("proc.cmdline", None, FieldType.STRING, False),
    ("proc.aname", "2", FieldType.STRING, False),
    ("proc.aname", None, FieldType.STRING, False),  # any ancestor: each operator as on a plain value
    ("proc.apid", None, FieldType.INT, False),
    ("proc.apid", "1", FieldType.INT, False),
    ("evt.arg", "mode", FieldType.STRING, False),
    ("proc.pid", None, FieldType.INT, False),
    ("user.uid", None, FieldType.INT, False),
    ("fd.sip", None, FieldType.IPADDR, False),
    ("fd.snet", None, FieldType.IPNET, False),
    ("container.privileged", None, FieldType.BOOL, False),
    ("ka.groups", None, FieldType.STRING, True),
    ("ka.ports", None, FieldType.INT, True),
    ("ka.ips", None, FieldType.IPADDR, True),
    ("evt.buffer", None, FieldType.BYTES, False),
    ("fd.num", None, FieldType.INT, False),  # coerced, with the inline fast path for ints
    ("evt.is_open_read", None, FieldType.BOOL, False),
    ("fd.nameraw", None, FieldType.STRING, False),
]

TEXT_OPS = ["contains", "icontains", "startswith", "endswith"]


def literals(texts: list[str]) -> st.SearchStrategy[Literal]:
    # a bare word is only bare when Falco's lexer would read it back as one
    return st.builds(lambda text, quoted: Literal(text, quoted or not BARE_WORD.fullmatch(text)), st.sampled_from(texts), st.booleans())


def list_of(texts: list[str]) -> st.SearchStrategy[ListValue]:
    return st.lists(literals(texts), max_size=4).map(lambda items: ListValue(tuple(items)))


def _loads(node: Compare) -> bool:
    """Whether the comparison loads (Falco refuses an operator its field's type does not take)."""
    try:
        check_condition(node, {}, REGISTRY)
    except ConditionCompileError:
        return False
    return True


def compares() -> st.SearchStrategy[Compare]:
    """Comparisons that load: drawn per field type, the few refused combinations left out."""
    return any_compares().filter(_loads)


@st.composite
def any_compares(draw: st.DrawFn) -> Compare:
    name, arg, ftype, is_list = draw(st.sampled_from(FIELDS))
    left: FieldRef | Transform = FieldRef(name, arg)
    if ftype is FieldType.STRING and draw(st.integers(0, 3)) == 0:
        left = Transform(draw(st.sampled_from(["tolower", "toupper", "basename", "b64"])), left)
        if draw(st.booleans()):
            left = Transform(draw(st.sampled_from(["tolower", "toupper", "len"])), left)
    if left != FieldRef(name, arg) and isinstance(left, Transform) and left.name == "len":
        ftype, is_list = FieldType.INT, False
    if ftype is FieldType.STRING and not is_list and draw(st.integers(0, 3)) == 0 and isinstance(left, FieldRef):
        left = Transform("len", left) if draw(st.booleans()) else left
        if isinstance(left, Transform):
            ftype = FieldType.INT
    if draw(st.integers(0, 9)) == 0:  # val(): compare with another field
        other_name, other_arg, _, _ = draw(st.sampled_from(FIELDS))
        op = draw(st.sampled_from(["=", "!=", "<", ">=", "in", "intersects", "contains", "startswith", "endswith", "glob", "icontains"]))
        return Compare(left, op, FieldValue(FieldRef(other_name, other_arg)))
    if ftype is FieldType.STRING:
        choice = draw(st.sampled_from(["eq", "ne", "order", "text", "glob", "regex", "in", "pmatch", "exists", "bytes"]))
        if choice == "eq":
            return Compare(left, draw(st.sampled_from(["=", "=="])), draw(literals(TEXTS)))
        if choice == "ne":
            return Compare(left, "!=", draw(literals(TEXTS)))
        if choice == "order":
            return Compare(left, draw(st.sampled_from(["<", "<=", ">", ">="])), draw(literals(TEXTS)))
        if choice == "text":
            return Compare(left, draw(st.sampled_from(TEXT_OPS)), draw(literals(TEXTS)))
        if choice == "glob":
            return Compare(left, draw(st.sampled_from(["glob", "iglob"])), draw(literals(PATTERNS)))
        if choice == "regex":
            return Compare(left, "regex", draw(literals(REGEXES)))
        if choice == "in":
            return Compare(left, draw(st.sampled_from(["in", "intersects"])), draw(list_of(TEXTS)))
        if choice == "pmatch":
            return Compare(left, "pmatch", draw(list_of(["/etc", "/etc/", "/", "/usr/bin", "a", "/e*", "/*/passwd", "/etc/[ps]*"])))
        if choice == "bytes":
            return Compare(left, draw(st.sampled_from(["bcontains", "bstartswith"])), draw(literals(HEX)))
        return Compare(left, "exists", None)
    if ftype is FieldType.INT:
        choice = draw(st.sampled_from(["cmp", "in", "exists"]))
        if choice == "cmp":
            return Compare(left, draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="])), draw(literals(INTS)))
        if choice == "in":
            return Compare(left, draw(st.sampled_from(["in", "intersects"])), draw(list_of(INTS)))
        return Compare(left, "exists", None)
    if ftype in (FieldType.IPADDR, FieldType.IPNET):
        values = IPS if ftype is FieldType.IPADDR else NETS
        choice = draw(st.sampled_from(["cmp", "in", "exists"]))
        if choice == "cmp":
            return Compare(left, draw(st.sampled_from(["=", "!="])), draw(literals(values)))
        if choice == "in":
            return Compare(left, draw(st.sampled_from(["in", "intersects"])), draw(list_of(values)))
        return Compare(left, "exists", None)
    if ftype is FieldType.BOOL:
        choice = draw(st.sampled_from(["cmp", "in", "exists"]))
        if choice == "cmp":
            return Compare(left, draw(st.sampled_from(["=", "!="])), draw(literals(["true", "false"])))
        if choice == "in":
            return Compare(left, draw(st.sampled_from(["in", "intersects"])), draw(list_of(["true", "false"])))
        return Compare(left, "exists", None)
    # BYTES
    choice = draw(st.sampled_from(["bytes", "text", "exists"]))
    if choice == "bytes":
        return Compare(left, draw(st.sampled_from(["bcontains", "bstartswith"])), draw(literals(HEX)))
    if choice == "text":  # on the bytes
        return Compare(left, draw(st.sampled_from(["contains", "startswith", "endswith"])), draw(literals(["a", "ab", "/e", "tc", ""])))
    return Compare(left, "exists", None)


MACRO_NAMES = ["m_shell", "m_etc", "m_root", "m_nested"]
MACROS = {
    "m_shell": parse_condition("proc.name in (bash, sh) or proc.pname startswith ba"),
    "m_etc": parse_condition("fd.name pmatch (/etc) and not fd.name endswith passwd"),
    "m_root": parse_condition("user.uid = 0 or proc.pid != 1"),
    "m_nested": parse_condition("m_shell and (m_root or container.privileged = true)"),
}


def conditions() -> st.SearchStrategy[Any]:
    leaves = st.one_of(compares(), compares(), st.sampled_from(MACRO_NAMES).map(MacroRef))

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            children.map(Not),
            st.lists(children, min_size=2, max_size=4).map(lambda items: And(_flat(And, items))),
            st.lists(children, min_size=2, max_size=4).map(lambda items: Or(_flat(Or, items))),
        )

    return st.recursive(leaves, extend, max_leaves=12)


def _flat(kind: type, items: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for item in items:
        out.extend(item.items if isinstance(item, kind) else [item])
    return tuple(out)


def _value(ftype: FieldType, is_list: bool) -> st.SearchStrategy[Any]:
    if is_list:
        return st.lists(_value(ftype, False), max_size=3)
    if ftype is FieldType.STRING:
        return st.sampled_from(TEXTS + ["bash", "/etc/ssh/x", "/usr/bin/ls", "sh"])
    if ftype is FieldType.INT:
        return st.sampled_from(INT_VALUES)
    if ftype in (FieldType.IPADDR, FieldType.IPNET):
        return st.sampled_from(IP_VALUES)
    if ftype is FieldType.BOOL:
        return st.booleans()
    return st.sampled_from([b"ab", b"\xff", b"/etc", b"", "ab"])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    flat = [("evt.type", FieldType.STRING, False)] + [(n, t, lst) for n, a, t, lst in FIELDS if a is None and n not in ("proc.cmdline", "user.uid", "ka.ports", "proc.aname", "proc.apid", "fd.num", "evt.is_open_read", "fd.nameraw")]
    for name, ftype, is_list in flat:
        presence = draw(st.integers(0, 5))
        if presence == 0:
            continue
        if presence == 1:
            event[name] = None
            continue
        event[name] = draw(_value(ftype, is_list))
    if draw(st.booleans()):
        event["proc"] = {"cmdline": draw(_value(FieldType.STRING, False))}
    if draw(st.booleans()):
        event["user"] = {"uid": draw(st.one_of(_value(FieldType.INT, False), st.just("0")))}
    if draw(st.booleans()):
        event["ports"] = draw(_value(FieldType.INT, True))
    if draw(st.booleans()):
        event["anames"] = draw(st.lists(_value(FieldType.STRING, False), max_size=4))
    for name in ("fd.num", "evt.is_open_read", "fd.nameraw"):  # as sent, as Falco prints it, or odd
        if draw(st.booleans()):
            event[name] = draw(st.sampled_from([0, 3, -1, 16, "3", "-1", "0x10", "<NA>", True, False, "true", "false", "TRUE", None, 2.0, "x", "/etc/passwd", "bash", ""]))
    if draw(st.booleans()):
        event["apids"] = draw(st.lists(st.one_of(_value(FieldType.INT, False), st.just("7")), max_size=4))
    if draw(st.booleans()):
        event["args"] = {"mode": draw(_value(FieldType.STRING, False))}
    return event


@SETTINGS
@given(conditions(), st.lists(events(), min_size=1, max_size=5))
def test_compiled_conditions_agree_with_the_reference(node: Any, sample: list[dict[str, Any]]) -> None:
    compiled = compile_condition(node, MACROS, REGISTRY)
    reference = ReferenceEvaluator(REGISTRY, MACROS)
    for event in sample:
        assert compiled(event) == reference.evaluate(node, event), (render(node), event, compiled.__source__)


@SETTINGS
@given(conditions())
def test_render_then_parse_is_the_identity(node: Any) -> None:
    assert parse_condition(render(node)) == node


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(list("abc.() ,=!<>'\"\\[]/*-0x \n\t") + ["not ", " and ", " or ", " in ", "proc.name", "val(", "len(", "exists", "contains "]), max_size=30).map("".join))
def test_random_text_only_ever_raises_condition_syntax_error(text: str) -> None:
    try:
        node = parse_condition(text)
    except ConditionSyntaxError as error:
        assert error.location is not None and error.location.line >= 1 and error.location.col >= 1
        return
    assert parse_condition(render(node)) == node


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_unicode_only_ever_raises_condition_syntax_error(text: str) -> None:
    try:
        parse_condition(text)
    except ConditionSyntaxError:
        pass
