"""Every error points at the file's line and column, whatever YAML style holds the condition."""

from __future__ import annotations

import pytest
from loader_fields import registry_for

from pipeline.errors import ConditionSyntaxError, RuleError, RuleErrors, RuleLoadError
from pipeline.rules.loader import RulesLoader


def error_of(*texts: str, cls: type[RuleError] = RuleError) -> RuleError:
    loader = RulesLoader(registry_for=registry_for)
    with pytest.raises(cls) as caught:
        for number, text in enumerate(texts):
            loader.add_text(text, f"f{number}.yaml")
        loader.load()
    return caught.value


def where(error: RuleError) -> tuple[str, int, int]:
    return error.location.path, error.location.line, error.location.col


def caret_column(error: RuleError) -> int:
    """The 1-based column the caret in str(error) points at, checked against the line shown."""
    lines = str(error).split("\n")
    assert lines[-2] == "    " + error.source_line.rstrip()
    return lines[-1].index("^") - 4 + 1


RULE_HEAD = "- rule: R\n  desc: d\n  output: o\n  priority: info\n"


def test_syntax_error_inside_a_folded_block_scalar() -> None:
    text = RULE_HEAD + (
        "  condition: >\n"
        "    evt.type = open and\n"
        "    proc.name in (bash, sh) and\n"
        "    (fd.name = x or )\n"
    )
    error = error_of(text, cls=ConditionSyntaxError)
    assert where(error) == ("f0.yaml", 8, 21)
    assert "unexpected ')'" in error.message
    assert error.source_line == "    (fd.name = x or )"
    assert caret_column(error) == 21
    assert str(error).startswith("f0.yaml:8:21: unexpected ')'")


def test_syntax_error_at_the_end_of_a_folded_condition_points_after_the_last_token() -> None:
    text = RULE_HEAD + "  condition: >\n    evt.type = open and\n    proc.name =\n"
    error = error_of(text, cls=ConditionSyntaxError)
    assert where(error) == ("f0.yaml", 7, 16)
    assert "end of condition" in error.message


def test_literal_block_scalar_keeps_its_indentation() -> None:
    text = RULE_HEAD + "  condition: |\n    evt.type = open\n      and proc.name in missing_list\n"
    error = error_of(text, cls=RuleLoadError)
    assert where(error) == ("f0.yaml", 7, 24)
    assert "undefined list 'missing_list'" in error.message


def test_multi_line_plain_scalar() -> None:
    text = RULE_HEAD + "  condition: evt.type = open\n    and no_such_macro\n"
    error = error_of(text, cls=RuleLoadError)
    assert where(error) == ("f0.yaml", 6, 9)
    assert "undefined macro 'no_such_macro'" in error.message


def test_double_quoted_scalar_with_escapes() -> None:
    text = RULE_HEAD + '  condition: "evt.type = open and proc.name = \\"a b\\" and fd.nope = x"\n'
    error = error_of(text, cls=RuleLoadError)
    assert where(error) == ("f0.yaml", 5, 59)
    assert error.source_line[58:65] == "fd.nope"


def test_single_quoted_scalar_with_doubled_quotes() -> None:
    text = RULE_HEAD + "  condition: 'proc.name = ''x y'' and evt.type = open and ('\n"
    error = error_of(text, cls=ConditionSyntaxError)
    assert where(error) == ("f0.yaml", 5, 60)
    assert "end of condition" in error.message


def test_non_ascii_text_before_the_error_counts_as_one_column_per_character() -> None:
    text = RULE_HEAD + "  condition: proc.name = \"café\" and evt.type = open and fd.nope = x\n"
    error = error_of(text, cls=RuleLoadError)
    assert where(error) == ("f0.yaml", 5, 57)
    assert caret_column(error) == 57


def test_an_appended_condition_reports_in_the_file_that_appended_it() -> None:
    first = RULE_HEAD + "  condition: evt.type = open\n"
    second = "- rule: R\n  condition: >\n    and proc.name =\n    = x\n  override:\n    condition: append\n"
    error = error_of(first, second, cls=ConditionSyntaxError)
    assert where(error) == ("f1.yaml", 4, 5)
    assert error.source_line == "    = x"


def test_an_unknown_field_in_a_macro_points_into_the_macro() -> None:
    text = (
        "- macro: k8s_thing\n  condition: >\n    evt.type = open\n    and ka.verb = create\n"
        "- rule: R\n  desc: d\n  output: o\n  priority: info\n  condition: k8s_thing\n"
    )
    error = error_of(text, cls=RuleLoadError)
    assert where(error) == ("f0.yaml", 4, 9)
    assert error.message == "unknown field 'ka.verb' for source 'syscall' (in macro 'k8s_thing')"


def test_str_of_an_error_shows_file_line_col_the_line_and_a_caret() -> None:
    text = RULE_HEAD + "  condition: evt.type = open and proc.nam = bash\n"
    error = error_of(text, cls=RuleLoadError)
    assert str(error) == (
        "f0.yaml:5:34: unknown field 'proc.nam' for source 'syscall'\n"
        "      condition: evt.type = open and proc.nam = bash\n"
        + " " * (4 + 33) + "^"
    )


def test_collected_errors_keep_their_positions() -> None:
    loader = RulesLoader(registry_for=registry_for, collect_errors=True)
    loader.add_text(RULE_HEAD + "  condition: evt.type = open and (\n", "a.yaml")
    loader.add_text("- macro: m\n  condition: proc.name = = x\n", "b.yaml")
    with pytest.raises(RuleErrors) as caught:
        loader.load()
    assert [where(error) for error in caught.value.errors] == [("b.yaml", 2, 26), ("a.yaml", 5, 35)]
