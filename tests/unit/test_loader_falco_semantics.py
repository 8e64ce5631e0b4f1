"""Where a rules file's meaning follows Falco's reader and collector (rule_loader_reader.cpp,
rule_loader_collector.cpp) in cases a rule author meets when tuning rules: exceptions whose
field the source lacks, repeated exception names, names no condition can use, an item with two
kinds' keys, replacing exceptions, and a rules directory with nothing in it."""

from __future__ import annotations

import loader_fields
import pytest
from loader_fields import load_texts

import pipeline.rules.loader as loader_module
from pipeline.cli.main import main
from pipeline.errors import RuleErrors, RuleLoadError

BASE = """
- rule: R
  desc: d
  condition: evt.type = open
  output: o
  priority: warning
  skip-if-unknown-filter: {skip}
  exceptions:
{exceptions}
"""


def rule(exceptions: str, skip: str = "false") -> str:
    indented = "\n".join("    " + line for line in exceptions.strip("\n").split("\n"))
    return BASE.format(exceptions=indented, skip=skip)


def codes(ruleset) -> list[str]:
    return [warning.code for warning in ruleset.warnings]


# -- exceptions naming a field the source does not have ------------------------


def test_an_exception_without_values_naming_an_unknown_field_is_an_error_at_the_field() -> None:
    """Falco checks an exception's fields when it reads the rule, values or not: a template
    exception (fields only, values appended later) with a misspelt field must not load."""
    with pytest.raises(RuleErrors) as caught:
        load_texts(rule("- name: by_file\n  fields: [proc.name, fd.nmae]"), collect_errors=True)
    (error,) = caught.value.errors
    assert "unknown field 'fd.nmae'" in error.message
    assert "exception 'by_file'" in error.message
    assert error.source_line.strip() == "fields: [proc.name, fd.nmae]"
    assert (error.location.line, error.location.col) == (10, 27)


def test_skip_if_unknown_filter_does_not_skip_an_unknown_exception_field() -> None:
    """Only the condition and the output are skippable in Falco; exceptions are checked first."""
    with pytest.raises(RuleLoadError) as caught:
        load_texts(rule("- name: e\n  fields: proc.nosuch\n  values: [a]", skip="true"))
    assert "unknown field 'proc.nosuch'" in caught.value.message
    assert caught.value.location.line == 10


def test_a_new_exception_appended_with_an_unknown_field_is_an_error_even_if_the_rule_may_skip() -> None:
    base = rule("- name: e\n  fields: proc.name\n  values: [cat]", skip="true")
    append = """
- rule: R
  exceptions:
    - name: other
      fields: fd.nosuch
      values: [/tmp]
  override:
    exceptions: append
"""
    with pytest.raises(RuleLoadError) as caught:
        load_texts(base, append)
    assert "unknown field 'fd.nosuch'" in caught.value.message
    assert caught.value.location.path == "file1.yaml"
    assert caught.value.location.line == 5


def test_exception_fields_with_an_argument_are_bound_with_it() -> None:
    with pytest.raises(RuleErrors) as caught:
        load_texts(rule("- name: e\n  fields: ['proc.aname[2]', 'proc.nosuch[1]']"), collect_errors=True)
    (error,) = caught.value.errors
    assert "unknown field 'proc.nosuch'" in error.message
    assert (error.location.line, error.location.col) == (10, 34)


# -- exception names ------------------------------------------------------------


def test_a_repeated_exception_name_is_a_warning_and_appends_go_to_the_first() -> None:
    base = rule(
        "- name: e\n  fields: proc.name\n  values: [cat]\n"
        "- name: e\n  fields: fd.name\n  values: [/tmp]"
    )
    append = """
- rule: R
  exceptions:
    - name: e
      values: [dog]
  override:
    exceptions: append
"""
    ruleset = load_texts(base, append)
    assert "exception-name-not-unique" in codes(ruleset)
    assert ruleset.rule("R").condition_text == (
        "(evt.type = open) and not (proc.name in (cat, dog)) and not (fd.name in (/tmp))"
    )


# -- replacing exceptions ---------------------------------------------------------


def test_replacing_exceptions_defines_them_anew_without_a_no_values_warning() -> None:
    base = rule("- name: e\n  fields: proc.name\n  values: [cat]")
    replace = """
- rule: R
  exceptions:
    - name: template
      fields: [proc.name, fd.name]
  override:
    exceptions: replace
"""
    ruleset = load_texts(base, replace)
    assert "exception-no-values" not in codes(ruleset)
    assert ruleset.rule("R").condition_text == "(evt.type = open)"  # Falco parenthesises it for any exception
    assert ruleset.rule("R").exceptions[0].fields == ("proc.name", "fd.name")


def test_a_replaced_exception_needs_its_fields() -> None:
    base = rule("- name: e\n  fields: proc.name\n  values: [cat]")
    replace = """
- rule: R
  exceptions:
    - name: e
      values: [dog]
  override:
    exceptions: replace
"""
    with pytest.raises(RuleLoadError) as caught:
        load_texts(base, replace)
    assert "exception 'e' needs 'fields'" in caught.value.message


# -- names and kinds --------------------------------------------------------------


def test_a_macro_or_list_name_no_condition_can_use_is_a_warning_as_in_falco() -> None:
    ruleset = load_texts("""
- macro: 1m
  condition: evt.type = open
- list: 'a b'
  items: [x]
""")
    warnings = {warning.code: warning for warning in ruleset.warnings}
    assert set(ruleset.macros) == {"1m"} and set(ruleset.lists) == {"a b"}
    assert (warnings["invalid-macro-name"].location.line, warnings["invalid-macro-name"].location.col) == (2, 10)
    assert (warnings["invalid-list-name"].location.line, warnings["invalid-list-name"].location.col) == (4, 9)


def test_an_item_with_list_and_rule_keys_is_a_list_as_falco_reads_it() -> None:
    ruleset = load_texts("- list: l\n  rule: r\n  items: [a]\n")
    assert set(ruleset.lists) == {"l"} and ruleset.rules == ()
    (unknown,) = [warning for warning in ruleset.warnings if warning.code == "unknown-key"]
    assert "unknown key 'rule' in a list item" in unknown.message


def test_required_engine_version_is_read_before_anything_else_in_the_item() -> None:
    ruleset = load_texts("- required_engine_version: 0.26.0\n  rule: r\n")
    assert ruleset.required_engine_version == "0.26.0" and ruleset.rules == ()


# -- rules directories --------------------------------------------------------------


@pytest.fixture
def small_registries(monkeypatch):
    monkeypatch.setattr(loader_module, "_default_registry_for", lambda: loader_fields.registry_for)


GOOD = "- rule: Shell\n  desc: d\n  condition: evt.type = execve and proc.name = bash\n  output: o\n  priority: info\n"


def test_an_empty_rules_directory_beside_other_rules_loads(tmp_path, capsys, small_registries) -> None:
    """Falco's default layout: /etc/falco/falco_rules.yaml plus an empty /etc/falco/rules.d."""
    (tmp_path / "falco_rules.yaml").write_text(GOOD)
    (tmp_path / "rules.d").mkdir()
    assert main(["rules", "validate", str(tmp_path / "falco_rules.yaml"), str(tmp_path / "rules.d")]) == 0
    assert "ok: 1 rules" in capsys.readouterr().out
