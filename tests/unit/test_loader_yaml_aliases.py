"""YAML anchors and aliases in rules files: a recursive anchor or an alias bomb ("billion
laughs") is a RuleLoadError at the anchored node, found without following the aliases, for the
rules and the correlations alike; ordinary aliases still load."""

from __future__ import annotations

import pytest

from pipeline.correlation.parse import CorrelationLoader
from pipeline.errors import RuleLoadError
from pipeline.rules.loader import load_rules_text
from pipeline.rules.yaml_source import SourceText, compose_documents

RULE = "- rule: R\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: info\n"


def bomb(levels: int = 9) -> str:
    """Nine levels of ten aliases each: 10^9 strings once followed, 100 nodes as composed."""
    lines = ["- x: &a0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"- x: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def error_of(text: str) -> RuleLoadError:
    with pytest.raises(RuleLoadError) as caught:
        load_rules_text(text, "f.yaml")
    return caught.value


def test_a_recursive_anchor_in_exception_fields_is_an_error_not_a_recursion_error() -> None:
    """Was RecursionError: the exception reader followed the alias into itself."""
    error = error_of(RULE + "  exceptions:\n   - name: e\n     fields: &f [proc.name, *f]\n")
    assert "recursive anchor" in error.message
    assert (str(error.location.path), error.location.line, error.location.col) == ("f.yaml", 8, 14)


def test_a_recursive_anchor_in_exception_values_is_an_error() -> None:
    error = error_of(RULE + "  exceptions:\n   - name: e\n     fields: proc.name\n     values: &v [a, *v]\n")
    assert "recursive anchor" in error.message
    assert (error.location.line, error.location.col) == (9, 14)


def test_an_alias_bomb_in_exception_values_is_refused_as_the_file_is_composed() -> None:
    """Was a hang: the exception reader built 10^8 value rows one by one. Now the composed
    documents never reach a reader."""
    text = bomb(8) + RULE + "  exceptions:\n   - name: e\n     fields: [proc.name, fd.name]\n     values: *a7\n"
    with pytest.raises(RuleLoadError) as caught:
        compose_documents(SourceText.of(text, "f.yaml"))
    assert "alias bomb" in caught.value.message
    assert caught.value.location.path == "f.yaml" and 1 <= caught.value.location.line <= 8
    assert "alias bomb" in error_of(text).message


def test_an_alias_bomb_anywhere_in_the_file_is_refused_even_in_an_ignored_item() -> None:
    error = error_of(bomb() + RULE)
    assert "alias bomb" in error.message and 1 <= error.location.line <= 9


def test_correlation_files_get_the_same_check() -> None:
    loader = CorrelationLoader()
    loader.add_text("- correlation: c\n  type: &t [sequence, *t]\n", "c.yaml")  # the rules loader reports it
    assert not loader.items
    error = error_of("- correlation: c\n  type: &t [sequence, *t]\n")
    assert "recursive anchor" in error.message and (error.location.line, error.location.col) == (2, 9)


def test_ordinary_aliases_still_load() -> None:
    text = (
        "- list: shells\n  items: &shells [bash, sh]\n- list: more_shells\n  items: *shells\n"
        "- rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (more_shells)\n  output: o\n  priority: info\n"
        "  exceptions:\n   - name: e\n     fields: [proc.name, proc.pname]\n     values: [&pair [bash, sshd], *pair]\n"
    )
    ruleset = load_rules_text(text, "f.yaml")
    assert ruleset.lists["more_shells"].items == ("bash", "sh")
    assert [r.name for r in ruleset.rules] == ["R"]
