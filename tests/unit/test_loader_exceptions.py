"""Rule exceptions compile to exactly the text Falco appends (rule_loader_compiler.cpp's
build_rule_exception_infos), and to the AST that text parses to."""

from __future__ import annotations

import textwrap

import pytest
from loader_fields import load_texts as load

from pipeline.errors import RuleErrors, RuleLoadError
from pipeline.rules.parser import parse_condition


def rule_with(exceptions: str, condition: str = "evt.type = open") -> str:
    return f"""
- list: shell_binaries
  items: [bash, zsh]
- rule: R
  desc: d
  condition: {condition}
  output: o
  priority: warning
  exceptions:
{textwrap.indent(textwrap.dedent(exceptions).strip(), "    ")}
"""


# (exceptions YAML, Falco's condition text, the same text after list expansion)
CASES = [
    pytest.param(
        """
        - name: known_shells
          fields: proc.name
          values: [bash, "my shell"]
        """,
        '(evt.type = open) and not (proc.name in (bash, "my shell"))',
        '(evt.type = open) and not (proc.name in (bash, "my shell"))',
        id="one field, default comp 'in', a value with a space is quoted",
    ),
    pytest.param(
        """
        - name: tmp
          fields: fd.name
          comps: pmatch
          values: [/tmp, /var/tmp]
        """,
        "(evt.type = open) and not (fd.name pmatch (/tmp, /var/tmp))",
        "(evt.type = open) and not (fd.name pmatch (/tmp, /var/tmp))",
        id="one field, pmatch",
    ),
    pytest.param(
        """
        - name: proc_writer
          fields: [proc.name, fd.directory]
          values:
            - [my-custom-yum, /usr/bin]
            - [my-custom-apt, "/usr/local/my bin"]
        """,
        '(evt.type = open) and not (( proc.name = my-custom-yum and  fd.directory = /usr/bin) or'
        ' ( proc.name = my-custom-apt and  fd.directory = "/usr/local/my bin"))',
        '(evt.type = open) and not (( proc.name = my-custom-yum and  fd.directory = /usr/bin) or'
        ' ( proc.name = my-custom-apt and  fd.directory = "/usr/local/my bin"))',
        id="several fields, default comps '='",
    ),
    pytest.param(
        """
        - name: parents
          fields: [proc.name, proc.pname]
          comps: [=, in]
          values:
            - [sh, [bash, "a b"]]
            - [sh, shell_binaries]
        """,
        '(evt.type = open) and not (( proc.name = sh and  proc.pname in (bash, "a b")) or'
        " ( proc.name = sh and  proc.pname in (shell_binaries)))",
        '(evt.type = open) and not (( proc.name = sh and  proc.pname in (bash, "a b")) or'
        " ( proc.name = sh and  proc.pname in (bash, zsh)))",
        id="a list value and a list name for 'in'",
    ),
    pytest.param(
        """
        - name: first
          fields: proc.name
          values: [cat]
        - name: empty
          fields: [proc.name, fd.name]
          values: []
        - name: second
          fields: [proc.cmdline]
          comps: [startswith]
          values: [["sh -c"]]
        """,
        '(evt.type = open) and not (proc.name in (cat)) and not (( proc.cmdline startswith "sh -c"))',
        '(evt.type = open) and not (proc.name in (cat)) and not (( proc.cmdline startswith "sh -c"))',
        id="several exceptions; one without values adds nothing",
    ),
    pytest.param(
        """
        - name: first
          fields: proc.name
          values: [cat]
        """,
        "(evt.type = open or evt.type = close) and not (proc.name in (cat))",
        "(evt.type = open or evt.type = close) and not (proc.name in (cat))",
        id="the rule's condition is parenthesised",
    ),
]


@pytest.mark.parametrize(("exceptions", "falco_text", "expanded_text"), CASES)
def test_exceptions_build_falcos_condition(exceptions: str, falco_text: str, expanded_text: str) -> None:
    condition = "evt.type = open or evt.type = close" if "or evt.type" in falco_text else "evt.type = open"
    ruleset = load(rule_with(exceptions, condition))
    rule = ruleset.rules[0]
    assert rule.condition_text == falco_text
    assert rule.condition == parse_condition(expanded_text)


def test_exception_values_are_kept_on_the_rule() -> None:
    ruleset = load(rule_with(CASES[3].values[0]))
    (exception,) = ruleset.rules[0].exceptions
    assert exception.name == "parents"
    assert exception.fields == ("proc.name", "proc.pname")
    assert exception.comps == ("=", "in")
    assert exception.values == (("sh", ("bash", "a b")), ("sh", "shell_binaries"))


def test_appending_values_to_an_existing_exception_and_adding_a_new_one() -> None:
    ruleset = load(rule_with(CASES[0].values[0]), """
    - rule: R
      exceptions:
        - name: known_shells
          values: [zsh]
        - name: by_user
          fields: [user.name]
          values: [[root]]
      override:
        exceptions: append
    """)
    rule = ruleset.rules[0]
    assert rule.condition_text == (
        '(evt.type = open) and not (proc.name in (bash, "my shell", zsh)) and not (( user.name = root))'
    )
    assert rule.condition == parse_condition(rule.condition_text)


def test_replacing_exceptions() -> None:
    ruleset = load(rule_with(CASES[0].values[0]), """
    - rule: R
      exceptions:
        - name: only
          fields: proc.pname
          values: [sshd]
      override:
        exceptions: replace
    """)
    assert ruleset.rules[0].condition_text == "(evt.type = open) and not (proc.pname in (sshd))"


@pytest.mark.parametrize(
    ("exceptions", "message", "line"),
    [
        ("- name: x\n  fields: proc.name\n  comps: '='\n  values: [a]", "comps must be one of (in, pmatch, intersects)", 12),
        ("- name: x\n  fields: [proc.name, fd.name]\n  comps: [=]\n  values: []", "fields and comps lists must have equal length", 12),
        ("- name: x\n  fields: [proc.name]\n  comps: [like]\n  values: []", "'like' is not a supported comparison operator", 12),
        ("- name: x\n  fields: [proc.name, fd.name]\n  values: [[a]]", "one entry per field (2)", 12),
        ("- name: x\n  fields: proc.name\n  values: [[a]]", "values must be a list of strings", 12),
        ("- name: x\n  values: [a]", "exception 'x' needs 'fields'", 10),
    ],
)
def test_bad_exceptions_are_errors_at_their_position(exceptions: str, message: str, line: int) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load(rule_with(exceptions))
    assert message in caught.value.message
    assert caught.value.location.line == line


def test_an_unknown_field_in_an_exception_points_at_the_field() -> None:
    with pytest.raises(RuleErrors) as caught:
        load(rule_with("- name: x\n  fields: [proc.name, fd.nope]\n  values: [[a, b]]"), collect_errors=True)
    (error,) = caught.value.errors
    assert "unknown field 'fd.nope'" in error.message
    assert (error.location.line, error.location.col) == (11, 27)
    assert error.source_line.strip() == "fields: [proc.name, fd.nope]"


@pytest.mark.parametrize("key", ["values", "fields"])
def test_lists_nested_hundreds_deep_in_an_exception_are_an_error_not_a_recursion_error(key: str) -> None:
    """YAML nests about 1000 deep; reading 500 nested lists overflowed Python's recursion
    (a raw RecursionError out of the loader)."""
    deep = "[" * 500 + "a" + "]" * 500
    exception = f"- name: x\n  fields: [proc.name, fd.name]\n  values: [[{deep}, b]]" if key == "values" else f"- name: x\n  fields: {deep}"
    with pytest.raises(RuleLoadError) as caught:
        load(rule_with(exception))
    assert f"an exception's '{key}' nests lists too deeply" in caught.value.message
    assert caught.value.location.line == (12 if key == "values" else 11)
