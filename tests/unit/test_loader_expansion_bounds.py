"""Lists and macros that double at each level (each naming the one before twice) are an error
where they pass the bound (a million terms), found by counting, never by expanding them: forty
levels were 2^40 items, a hang. The examples here are the smallest past the bound (about 2^20),
which the loader used to load in a few seconds. A chain of thousands of lists each naming the
next is as deep as it is long and still loads."""

from __future__ import annotations

import pytest

from pipeline.correlation.parse import load_rules_and_correlations
from pipeline.errors import RuleLoadError
from pipeline.rules.loader import load_rules_text
from pipeline.rules.resolve import MAX_EXPANDED_TERMS

RULE = "- rule: R\n  desc: d\n  condition: {}\n  output: o\n  priority: info\n"


def error_of(text: str) -> RuleLoadError:
    with pytest.raises(RuleLoadError) as caught:
        load_rules_text(text, "f.yaml")
    return caught.value


def test_lists_that_double_at_each_level_are_an_error_at_the_first_too_large() -> None:
    text = "".join(f"- list: l{i}\n  items: [{'a' if i == 0 else f'l{i - 1}, l{i - 1}'}]\n" for i in range(21))
    error = error_of(text)
    assert error.message.startswith("list 'l20' expands to more than 1,000,000 items")
    assert (error.location.path, error.location.line, error.location.col) == ("f.yaml", 41, 3)


def test_lists_that_double_named_before_they_are_defined_are_an_error_in_the_condition() -> None:
    """Lists defined after the list naming them expand in the condition (here an unused macro's)."""
    text = "".join(f"- list: l{i}\n  items: [{'a' if i == 20 else f'l{i + 1}, l{i + 1}'}]\n" for i in range(21))
    error = error_of(text + "- macro: m\n  condition: evt.type = open and proc.name in (l0)\n")
    assert error.message.startswith("the lists named here expand to more than 1,000,000 items ('l0'")
    assert (error.location.line, error.location.col) == (44, 48)


def test_a_chain_of_lists_each_naming_the_next_is_not_a_recursion_error() -> None:
    """Was RecursionError out of the loader: a macro's lists were expanded one recursion per list."""
    text = "".join(f"- list: l{i}\n  items: [{'a' if i == 2999 else f'l{i + 1}'}]\n" for i in range(3000))
    text += "- macro: m\n  condition: proc.name in (l0)\n" + RULE.format("evt.type = open and m")
    ruleset = load_rules_text(text, "f.yaml")
    assert [rule.name for rule in ruleset.rules] == ["R"]


def test_macros_that_double_at_each_level_are_an_error_at_the_first_too_large() -> None:
    """Each macro is and(m, m) of the one before: m19 has 2^20 - 1 terms."""
    text = "".join(f"- macro: m{i}\n  condition: {'evt.type = open' if i == 0 else f'(m{i - 1} and m{i - 1})'}\n" for i in range(20))
    error = error_of(text + RULE.format("m19"))
    assert error.message == f"macro 'm19' expands to more than {MAX_EXPANDED_TERMS:,} terms once the macros it uses are inlined"
    assert (error.location.line, error.location.col) == (39, 3)


def test_a_rule_using_a_large_macro_many_times_is_an_error_at_its_condition() -> None:
    text = "".join(f"- macro: m{i}\n  condition: {'evt.type = open' if i == 0 else f'(m{i - 1} and m{i - 1})'}\n" for i in range(19))
    error = error_of(text + RULE.format("m18 and m18"))  # each 2^19 - 1 terms
    assert error.message.startswith("rule 'R' expands to more than 1,000,000 terms")
    assert (error.location.line, error.location.col) == (41, 14)


def test_a_correlation_step_using_a_large_macro_many_times_is_an_error_at_its_condition(tmp_path) -> None:
    macros = "".join(f"- macro: m{i}\n  condition: {'evt.type = open' if i == 0 else f'(m{i - 1} and m{i - 1})'}\n" for i in range(19))
    path = tmp_path / "c.yaml"
    path.write_text(macros + RULE.format("evt.type = open") + (
        "- correlation: C\n  type: threshold\n  desc: d\n  by: container.id\n  window: 1m\n  count: 2\n"
        "  condition: m18 and m18\n  output: o\n  priority: info\n"))
    with pytest.raises(RuleLoadError) as caught:
        load_rules_and_correlations([path])
    assert "expands to more than 1,000,000 terms" in caught.value.message
    assert (caught.value.location.line, caught.value.location.col) == (50, 14)
