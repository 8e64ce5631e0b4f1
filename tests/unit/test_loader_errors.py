"""Bad rules files: what is an error (and where), what is only a warning, and collect-all mode."""

from __future__ import annotations

import pytest
from loader_fields import load_texts, registry_for

from pipeline.errors import ConditionSyntaxError, RuleErrors, RuleLoadError
from pipeline.rules.loader import RulesLoader, load_rules


def load(*texts: str, **options):
    return load_texts(*texts, file_name="f{}.yaml", **options)


def error_of(*texts: str, **options) -> RuleLoadError:
    with pytest.raises(RuleLoadError) as caught:
        load(*texts, **options)
    return caught.value


GOOD = """
- macro: opened
  condition: evt.type = open
- rule: R
  desc: d
  condition: opened and proc.name = cat
  output: o
  priority: info
"""


def test_yaml_syntax_error_is_reported_at_pyyamls_mark() -> None:
    error = error_of("- rule: R\n  desc: [unclosed\n  condition: x\n")
    assert error.message.startswith("invalid YAML")
    assert error.location.path == "f0.yaml"
    assert error.location.line == 3


def test_tab_indentation_is_a_yaml_error() -> None:
    error = error_of("- rule: R\n\tdesc: d\n")
    assert error.message.startswith("invalid YAML")
    assert (error.location.line, error.location.col) == (2, 1)


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    error = error_of("- rule: R\n  desc: d\n  desc: e\n  condition: evt.type = open\n  output: o\n  priority: info\n")
    assert error.message == "duplicate key 'desc'"
    assert (error.location.line, error.location.col) == (3, 3)


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("rule: R", "a rules file must be a YAML list of items", 1, 1),
        ("- just a string", "each item must be a mapping", 1, 3),
        ("- rule: R\n  desc: d\n  condition: [a, b]\n  output: o\n  priority: info", "key 'condition' must be a string, got a list", 3, 14),
        ("- rule: R\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: info\n  tags: shell", "key 'tags' must be a list of strings", 6, 9),
        ("- rule: R\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: info\n  enabled: maybe", "key 'enabled' must be true or false, got 'maybe'", 6, 12),
        ("- list: l\n  items: {a: b}", "key 'items' must be a list of strings", 2, 10),
        ("- list: l\n  items: [a, [b]]", "each entry of 'items' must be a string, got a list", 2, 14),
        ("- list: l\n  items:", "key 'items' must be a list of strings (e.g. [a, b]), got nothing", 2, 3),
        ("- macro: m\n  condition:", "key 'condition' is empty", 2, 3),
        ("- rule: R\n  desc: d\n  condition: evt.type = open", "rule 'R' is missing required keys 'output', 'priority'", 1, 3),
        ("- rule: R", "rule 'R' needs condition, output, priority and desc", 1, 3),
        ("- rule: R\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: urgent", "invalid priority 'urgent'", 5, 13),
        ("- required_engine_version: abc", "cannot read engine version 'abc'", 1, 28),
        ("- required_plugin_versions:\n  - name: json\n    version: latest", "invalid required version 'latest' for plugin 'json'", 3, 14),
    ],
)
def test_shape_errors(text: str, message: str, line: int, col: int) -> None:
    error = error_of(text)
    assert message in error.message
    assert (error.location.line, error.location.col) == (line, col)
    assert error.source_line == text.split("\n")[line - 1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("- rule: Other\n  condition: and x\n  append: true", "no rule by that name exists yet"),
        ("- rule: Other\n  condition: x\n  override:\n    condition: append", "no rule by that name exists yet"),
        ("- rule: Other\n  priority: info\n  override:\n    priority: replace", "no rule by that name exists yet"),
        ("- rule: Other\n  enabled: false", "has only 'enabled' but no rule by that name exists yet"),
        ("- macro: other\n  condition: or x\n  append: true", "no macro by that name exists yet"),
        ("- list: other\n  items: [x]\n  override:\n    items: append", "no list by that name exists yet"),
        ("- rule: R\n  condition: and x\n  append: true\n  override:\n    condition: append", "cannot be used together"),
        ("- rule: R\n  priority: info\n  override:\n    priority: append", "key 'priority' cannot be appended to, use 'replace' instead"),
        ("- rule: R\n  source: k8s_audit\n  override:\n    source: replace", "key 'source' cannot be replaced"),
        ("- rule: R\n  condition: and x\n  override:\n    condition: prepend", "invalid override operation for key 'condition': 'prepend'; allowed: append, replace"),
        ("- rule: R\n  override:\n    condition: append", "an append override for 'condition' was given but the item has no 'condition' key"),
        ("- rule: R\n  condition: and x\n  output: o\n  override:\n    condition: append", "key 'output' has no matching entry under 'override'"),
        ("- rule: R\n  append: true", "appended rule 'R' must have a condition or exceptions to append"),
    ],
)
def test_bad_appends_and_overrides(change: str, message: str) -> None:
    error = error_of(GOOD, change)
    assert message in error.message
    assert error.location.path == "f1.yaml"


def test_undefined_macro_in_a_rule() -> None:
    error = error_of("- rule: R\n  desc: d\n  condition: evt.type = open and not trusted\n  output: o\n  priority: info\n")
    assert error.message == "undefined macro 'trusted' used in rule 'R'"
    assert (error.location.line, error.location.col) == (3, 38)


def test_macro_reference_loop() -> None:
    error = error_of(
        "- macro: a\n  condition: evt.type = open\n- macro: b\n  condition: a\n"
        "- macro: a\n  condition: b\n"
        "- rule: R\n  desc: d\n  condition: a\n  output: o\n  priority: info\n"
    )
    assert "macro reference loop: a -> b -> a" in error.message


def test_a_type_error_found_by_the_compiler_is_reported_at_the_literal() -> None:
    error = error_of("- rule: R\n  desc: d\n  condition: evt.type = open and proc.pid = abc\n  output: o\n  priority: info\n")
    assert (error.location.line, error.location.col) == (3, 45)
    assert "'abc' is not a number" in error.message


def test_skip_if_unknown_filter_skips_the_rule_with_a_warning() -> None:
    ruleset = load(GOOD, """
    - rule: Needs plugin
      desc: d
      condition: evt.type = open and plugin.field = 1
      output: o
      priority: info
      skip-if-unknown-filter: true
    """)
    assert [rule.name for rule in ruleset.rules] == ["R"]
    (warning,) = [w for w in ruleset.warnings if w.code == "unknown-field-skipped"]
    assert "rule 'Needs plugin' is skipped: unknown field 'plugin.field'" in warning.message
    assert (warning.location.path, warning.location.line, warning.location.col) == ("f1.yaml", 4, 34)


PLUGIN_RULES = """
- macro: okta_app
  condition: okta.app = x
- rule: Okta
  desc: d
  condition: okta_app and okta.evt.type = user.session.start
  output: o %okta.actor.name
  priority: info
  source: okta
"""


def test_rules_of_an_unknown_source_are_skipped_with_a_warning_as_falco_does() -> None:
    """A rules directory shared with Falco holds plugin rules (okta, github): Falco skips them
    ("Unknown source okta, skipping"); Peregrine refused to scan or start."""
    ruleset = load(GOOD, PLUGIN_RULES)
    assert [rule.name for rule in ruleset.rules] == ["R"]
    (warning,) = [w for w in ruleset.warnings if w.skips_a_rule]
    assert warning.code == "unknown-source" and "unknown source 'okta'; rule 'Okta' is skipped" in warning.message
    assert (warning.location.line, warning.location.col) == (9, 11)


def test_unknown_sources_can_be_errors() -> None:
    error = error_of(GOOD, PLUGIN_RULES, skip_unknown_sources=False)
    assert "unknown source 'okta' for rule 'Okta'" in str(error)


def test_warnings_are_kept_apart_from_errors() -> None:
    ruleset = load("""
    - list: unused_list
      items: [a]
    - macro: unused_macro
      condition: proc.name = x
    - rule: Everything
      desc: d
      condition: proc.name = cat
      output: o
      priority: info
      colour: red
    - rule: Quiet
      desc: d
      condition: proc.name = cat
      output: o
      priority: info
      warn_evttypes: false
    - something: else
    """)
    codes = sorted(w.code for w in ruleset.warnings)
    assert codes == ["no-evttype", "unknown-item", "unknown-key", "unused-list", "unused-macro"]
    by_code = {w.code: w for w in ruleset.warnings}
    assert "rule 'Everything' does not restrict evt.type" in by_code["no-evttype"].message
    assert by_code["unknown-key"].location.line == 11
    assert str(by_code["unused-macro"]).startswith("f0.yaml:4:3: warning: macro 'unused_macro' is not used")


def test_collect_mode_gathers_every_error_across_files_and_returns_nothing() -> None:
    loader = RulesLoader(registry_for=registry_for, collect_errors=True)
    loader.add_text("- rule: A\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: loud\n", "one.yaml")
    loader.add_text("- rule: B\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: info\n", "two.yaml")
    loader.add_text("- rule: C\n  desc: d\n  condition: evt.type = open and fd.nope = 1\n  output: o\n  priority: info\n"
                    "- rule: A\n  enabled: false\n", "three.yaml")
    with pytest.raises(RuleErrors) as caught:
        loader.load()
    errors = caught.value.errors
    assert [(e.location.path, e.location.line) for e in errors] == [("one.yaml", 5), ("two.yaml", 3), ("three.yaml", 3)]
    assert isinstance(errors[1], ConditionSyntaxError)
    text = str(caught.value)
    assert "one.yaml:5:13: invalid priority 'loud'" in text
    assert "three.yaml:3:34: unknown field 'fd.nope'" in text


def test_strict_mode_raises_the_first_error_at_once() -> None:
    loader = RulesLoader(registry_for=registry_for)
    with pytest.raises(RuleLoadError, match="invalid priority"):
        loader.add_text("- rule: A\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: loud\n", "one.yaml")


def test_a_missing_file_is_an_error(tmp_path) -> None:
    with pytest.raises(RuleLoadError, match="cannot read rules file"):
        load_rules([tmp_path / "nope.yaml"], registry_for=registry_for)


def test_an_unknown_field_in_the_output_is_an_error_at_the_field() -> None:
    error = error_of("- rule: R\n  desc: d\n  condition: evt.type = open\n  output: >\n    opened %fd.name by %proc.nmae\n  priority: info\n")
    assert error.message == "unknown field 'proc.nmae' for source 'syscall' (in the output)"
    assert (error.location.line, error.location.col) == (5, 25)


def test_output_fields_with_arguments_and_escapes_are_accepted() -> None:
    ruleset = load("- rule: R\n  desc: d\n  condition: evt.type = open\n  output: 100%% %proc.aname[2] %evt.arg.mode %container.info\n  priority: info\n")
    assert ruleset.rules[0].output == "100%% %proc.aname[2] %evt.arg.mode %container.info"


def test_conditions_nested_past_any_sane_depth_are_errors_not_tracebacks() -> None:
    """`not` a thousand times, or macros inlined into macros a thousand levels deep, parsed and
    then overflowed Python's stack in a recursive pass: a RecursionError traceback."""
    with pytest.raises(ConditionSyntaxError) as caught:
        load("- rule: R\n  desc: d\n  condition: " + "not " * 1000 + "proc.name = x\n  output: o\n  priority: info")
    error = caught.value
    assert "condition is nested too deeply (more than 100 levels" in str(error)
    assert (error.location.line, error.location.col) == (3, 14 + 4 * 100)
    macros = ["- macro: m0\n  condition: " + "not " * 90 + "proc.name = x"]
    macros += [f"- macro: m{i}\n  condition: " + "not " * 90 + f"m{i - 1}" for i in range(1, 14)]
    error = error_of("\n".join(macros) + "\n- rule: R\n  desc: d\n  condition: m13\n  output: o\n  priority: info")
    assert "nested too deeply to compile" in str(error) and error.location.line == 31


def test_a_file_requiring_a_newer_engine_loads_with_a_warning_that_scan_shows() -> None:
    """Falco refuses such a file; Peregrine read the requirement and said nothing."""
    ruleset = load("- required_engine_version: 999.0.0\n" + GOOD)
    (warning,) = [w for w in ruleset.warnings if w.code == "engine-version"]
    assert warning.shown and "requires Falco engine version 999.0.0, newer than the 0.57.0" in warning.message
    assert (warning.location.line, warning.location.col) == (1, 28)
    assert not [w for w in load("- required_engine_version: 0.57.0\n" + GOOD).warnings if w.code == "engine-version"]
    assert not [w for w in load("- required_engine_version: 15\n" + GOOD).warnings if w.code == "engine-version"]  # 0.15.0
