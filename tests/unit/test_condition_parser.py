"""The condition parser: Falco's syntax, its AST, its error messages, the upstream corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ConditionSyntaxError
from pipeline.rules.ast import And, Compare, FieldRef, FieldValue, ListValue, Literal, MacroRef, Not, Or, Pos, Transform
from pipeline.rules.parser import parse_condition
from pipeline.rules.render import render, to_json


def field(name: str, arg: str | None = None) -> FieldRef:
    return FieldRef(name, arg)


def bare(text: str) -> Literal:
    return Literal(text, False)


def test_precedence_is_or_then_and_then_not() -> None:
    assert parse_condition("not a and b or c") == Or((And((Not(MacroRef("a")), MacroRef("b"))), MacroRef("c")))
    assert parse_condition("a or b and not c") == Or((MacroRef("a"), And((MacroRef("b"), Not(MacroRef("c"))))))


def test_nested_and_or_are_flattened() -> None:
    assert parse_condition("(a and b) and (c and d)") == And(tuple(MacroRef(x) for x in "abcd"))
    assert parse_condition("a or (b or (c))") == Or(tuple(MacroRef(x) for x in "abc"))


def test_not_without_blank_before_parenthesis() -> None:
    assert parse_condition("not(a)") == Not(MacroRef("a"))
    assert parse_condition("nothing") == MacroRef("nothing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proc.name = bash", Compare(field("proc.name"), "=", bare("bash"))),
        ("proc.name=bash", Compare(field("proc.name"), "=", bare("bash"))),
        ("fd.net != 127.0.0.0/8", Compare(field("fd.net"), "!=", bare("127.0.0.0/8"))),
        ("evt.rawres >= -1", Compare(field("evt.rawres"), ">=", bare("-1"))),
        ("fd.name glob *.so", Compare(field("fd.name"), "glob", bare("*.so"))),
        ("evt.arg.flags contains O_TRUNC", Compare(field("evt.arg.flags"), "contains", bare("O_TRUNC"))),
        ("fd.name startswith /etc/", Compare(field("fd.name"), "startswith", bare("/etc/"))),
        ("proc.cmdline contains %", Compare(field("proc.cmdline"), "contains", bare("%"))),
        ("fd.sip.name = a:b:c", Compare(field("fd.sip.name"), "=", bare("a:b:c"))),
        ("proc.aname[2] = sshd", Compare(field("proc.aname", "2"), "=", bare("sshd"))),
        ("evt.arg[0] = x", Compare(field("evt.arg", "0"), "=", bare("x"))),
        ("jevt.value[/stage] = ResponseComplete", Compare(field("jevt.value", "/stage"), "=", bare("ResponseComplete"))),
        ('fd.name["a b"] exists', Compare(field("fd.name", "a b"), "exists", None)),
        ("ka.req.pod.volumes.hostpath[/etc] exists", Compare(field("ka.req.pod.volumes.hostpath", "/etc"), "exists", None)),
        ('proc.name = "a \\"q\\" \\n"', Compare(field("proc.name"), "=", Literal('a "q" \n', True))),
        ('proc.cmdline contains "\\x41\\x2f"', Compare(field("proc.cmdline"), "contains", Literal("A/", True))),  # Falco 0.45+
        ("proc.name = 'it''", None),
        ("proc.name = 'say \"hi\"'", Compare(field("proc.name"), "=", Literal('say "hi"', True))),
        ("proc.name in (a, \"b\", 'c', my_list)", Compare(field("proc.name"), "in", ListValue((bare("a"), Literal("b", True), Literal("c", True), bare("my_list"))))),
        ("proc.name in ()", Compare(field("proc.name"), "in", ListValue(()))),
        ("proc.name in(a)", Compare(field("proc.name"), "in", ListValue((bare("a"),)))),
        ("proc.name in shell_binaries", Compare(field("proc.name"), "in", ListValue((bare("shell_binaries"),)))),
        ("fd.name pmatch (/etc, /usr)", Compare(field("fd.name"), "pmatch", ListValue((bare("/etc"), bare("/usr"))))),
        ("tolower(proc.name) = bash", Compare(Transform("tolower", field("proc.name")), "=", bare("bash"))),
        ("len(toupper(proc.args)) > 3", Compare(Transform("len", Transform("toupper", field("proc.args"))), ">", bare("3"))),
        ("proc.name = val(proc.pname)", Compare(field("proc.name"), "=", FieldValue(field("proc.pname")))),
        ("proc.name = tolower(proc.pname)", Compare(field("proc.name"), "=", FieldValue(Transform("tolower", field("proc.pname"))))),
        ("proc.name = val(tolower(proc.pname))", Compare(field("proc.name"), "=", FieldValue(Transform("tolower", field("proc.pname"))))),
        ("proc.name = and", Compare(field("proc.name"), "=", bare("and"))),
        ("evt.buffer bcontains cafebabe", Compare(field("evt.buffer"), "bcontains", bare("cafebabe"))),
        ("proc.exe regex '[a-z]+'", Compare(field("proc.exe"), "regex", Literal("[a-z]+", True))),
    ],
)
def test_values_fields_and_operators(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(ConditionSyntaxError):
            parse_condition(text)
    else:
        assert parse_condition(text) == expected


def test_positions_are_one_based_within_the_condition() -> None:
    node = parse_condition("a and\n  proc.name in (x, y)")
    assert isinstance(node, And)
    assert node.items[0].pos == Pos(1, 1)
    compare = node.items[1]
    assert compare.pos == Pos(2, 3)
    assert compare.right.pos == Pos(2, 16)
    assert compare.right.items[1].pos == Pos(2, 20)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        (")", 1, 1, "unexpected ')'; expected a field, a macro, 'not' or '('"),
        ("a and", 1, 6, "unexpected end of condition; expected a field, a macro, 'not' or '('"),
        ("a and\n  (b or )", 2, 9, "unexpected ')'"),
        ("proc.name =", 1, 12, "expected a value"),
        ('proc.name = "abc', 1, 13, "unterminated string"),
        ("proc.name", 1, 1, "needs an operator"),
        ("proc = 1", 1, 1, "not a field name"),
        ("a and and b", 1, 7, "unexpected 'and'"),
        ("proc.name interesting x", 1, 11, "unexpected 'interesting'; expected an operator"),
        ('proc.name = "\\q"', 1, 13, "unsupported escape"),
        ('proc.name = "\\xZ1"', 1, 13, "'\\x' takes two hex digits in a quoted string, got '\\xZ1'"),
        ("proc.name = (a)", 1, 13, "unexpected '('"),
        ("((a)", 1, 5, "expected ')'"),
        ("", 1, 1, "empty condition"),
    ],
)
def test_syntax_errors_say_where_and_what(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    error = caught.value
    assert (error.location.line, error.location.col) == (line, col)
    assert message in error.message
    assert "Traceback" not in str(error) and "lark" not in str(error).lower()
    assert error.source_line == (text.split("\n")[line - 1])


def test_deep_nesting_is_a_syntax_error_or_a_tree_never_a_crash() -> None:
    deep = "(" * 3000 + "a" + ")" * 3000
    assert parse_condition(deep) == MacroRef("a")
    nots = "not " * 3000 + "a"
    try:
        node = parse_condition(nots)
    except ConditionSyntaxError:
        return
    assert isinstance(node, Not)


def _upstream_conditions(directory: Path) -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(directory.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if isinstance(item, dict) and isinstance(item.get("condition"), str):
                name = item.get("rule") or item.get("macro") or "?"
                found.append((path.name, name, item["condition"]))
            for exception in (item.get("exceptions") or []) if isinstance(item, dict) else []:
                for value in exception.get("values") or []:
                    for text in value if isinstance(value, list) else [value]:
                        if isinstance(text, str):
                            found.append((path.name, f"{name} exception value", f"x.y = {render_literal_text(text)}"))
    return found


def render_literal_text(text: str) -> str:
    from pipeline.rules.render import quote

    return quote(text)


def test_every_upstream_condition_parses_and_round_trips(upstream_rules_dir: Path) -> None:
    conditions = _upstream_conditions(upstream_rules_dir)
    assert len(conditions) > 500
    failures = []
    for file_name, name, text in conditions:
        try:
            node = parse_condition(text)
        except ConditionSyntaxError as error:
            failures.append(f"{file_name} {name}: {error}")
            continue
        assert parse_condition(render(node)) == node, (file_name, name)
    assert failures == []


def test_to_json_is_plain_json() -> None:
    data = to_json(parse_condition("not proc.name in (a, 'b') and tolower(fd.name) exists"))
    assert json.loads(json.dumps(data)) == data
    assert data["type"] == "and"
    assert data["items"][0] == {
        "type": "not",
        "pos": {"line": 1, "col": 1},
        "operand": {
            "type": "compare",
            "op": "in",
            "pos": {"line": 1, "col": 5},
            "left": {"type": "field", "name": "proc.name", "arg": None, "pos": {"line": 1, "col": 5}},
            "right": {
                "type": "list",
                "pos": {"line": 1, "col": 18},
                "items": [
                    {"type": "literal", "text": "a", "quoted": False, "pos": {"line": 1, "col": 19}},
                    {"type": "literal", "text": "b", "quoted": True, "pos": {"line": 1, "col": 22}},
                ],
            },
        },
    }
