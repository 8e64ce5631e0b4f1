"""Rules files -> RuleSet: Falco's items, defaults, append/override, redefinition and ordering."""

from __future__ import annotations

import textwrap

import pytest
from loader_fields import load_texts as load, registry_for

from pipeline.errors import RuleLoadError
from pipeline.rules.ast import And, Compare, FieldRef, ListValue, Literal, MacroRef, Not
from pipeline.rules.loader import RulesLoader, load_rules, load_rules_text
from pipeline.rules.model import Priority
from pipeline.rules.parser import parse_condition


BASE = """
- list: shells
  items: [bash, sh]
- macro: spawned_process
  condition: evt.type = execve and evt.dir = <
- rule: Shell
  desc: a shell ran
  condition: spawned_process and proc.name in (shells)
  output: "shell %proc.name"
  priority: warning
  tags: [shell, process]
"""


def test_a_rule_has_falco_defaults_and_its_lists_expanded() -> None:
    ruleset = load(BASE)
    (rule,) = ruleset.rules
    assert rule.name == "Shell"
    assert rule.priority is Priority.WARNING
    assert rule.source == "syscall"
    assert rule.enabled is True
    assert rule.warn_evttypes is True
    assert rule.skip_if_unknown_filter is False
    assert rule.tags == ("process", "shell")  # Falco keeps tags in a sorted set
    assert rule.condition == And((
        MacroRef("spawned_process"),
        Compare(FieldRef("proc.name"), "in", ListValue((Literal("bash"), Literal("sh")))),
    ))
    assert ruleset.inline(rule.condition) == parse_condition("evt.type = execve and evt.dir = < and proc.name in (bash, sh)")
    assert ruleset.lists["shells"].items == ("bash", "sh")
    assert rule.location.path == "file0.yaml" and rule.location.line == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [("EMERGENCY", Priority.EMERGENCY), ("alert", Priority.ALERT), ("Critical", Priority.CRITICAL),
     ("ERROR", Priority.ERROR), ("warning", Priority.WARNING), ("NOTICE", Priority.NOTICE),
     ("info", Priority.INFORMATIONAL), ("INFORMATIONAL", Priority.INFORMATIONAL), ("debug", Priority.DEBUG)],
)
def test_priorities_parse_case_insensitively(text: str, expected: Priority) -> None:
    assert Priority.parse(text) is expected


def test_priority_order_and_labels_follow_falco() -> None:
    assert Priority.EMERGENCY < Priority.WARNING < Priority.DEBUG
    assert Priority.INFO is Priority.INFORMATIONAL
    assert Priority.INFO.label == "Informational"
    assert len(list(Priority)) == 8
    with pytest.raises(ValueError, match="invalid priority 'urgent'"):
        Priority.parse("urgent")


def test_a_list_may_use_lists_defined_before_it_recursively_but_not_after() -> None:
    ruleset = load("""
    - list: a
      items: [x, "y z"]
    - list: b
      items: [a, w, later]
    - list: c
      items: [b]
    - list: later
      items: [never]
    - rule: R
      desc: d
      condition: evt.type = open and proc.name in (c, '"quoted"', "a")
      output: o
      priority: debug
    """)
    assert ruleset.lists["b"].items == ("x", "y z", "w", "later")
    assert ruleset.lists["c"].items == ("x", "y z", "w", "later")
    compare = ruleset.rules[0].condition.items[1]
    # `later` inside c expands too (Falco substitutes every list in a condition); a quoted word never does
    assert compare.right.items == (
        Literal("x"), Literal("y z", True), Literal("w"), Literal("never"), Literal('"quoted"', True), Literal("a", True),
    )


def test_rules_may_use_macros_and_lists_defined_after_them() -> None:
    ruleset = load("""
    - rule: Early
      desc: d
      condition: late_macro and proc.name in (late_list)
      output: o
      priority: notice
    - macro: late_macro
      condition: evt.type = open
    - list: late_list
      items: [cat]
    """)
    assert ruleset.inline(ruleset.rules[0].condition) == parse_condition("evt.type = open and proc.name in (cat)")


def test_a_macro_may_only_use_macros_defined_before_it() -> None:
    with pytest.raises(RuleLoadError, match="macro 'b' is used in macro 'a' before it is defined") as caught:
        load("""
        - macro: a
          condition: b and proc.name = x
        - macro: b
          condition: evt.type = open
        """)
    assert (caught.value.location.line, caught.value.location.col) == (3, 14)


def test_appending_to_a_macro_lets_it_see_macros_defined_before_the_append() -> None:
    ruleset = load("""
    - macro: a
      condition: evt.type = open
    - macro: b
      condition: proc.name = cat
    - macro: a
      condition: or b
      override:
        condition: append
    - rule: R
      desc: d
      condition: a
      output: o
      priority: debug
    """)
    assert ruleset.macros["a"].condition_text == "evt.type = open or b"
    assert ruleset.inline(ruleset.rules[0].condition) == parse_condition("evt.type = open or proc.name = cat")


def test_list_append_and_deprecated_append_flag() -> None:
    ruleset = load(BASE, """
    - list: shells
      items: [zsh]
      override:
        items: append
    - list: shells
      items: [fish]
      append: true
    """)
    assert ruleset.lists["shells"].items == ("bash", "sh", "zsh", "fish")
    assert ruleset.rules[0].condition.items[1].right.items[-1] == Literal("fish")
    assert [w.code for w in ruleset.warnings] == ["deprecated-append"]


def test_list_override_replace_redefines_it() -> None:
    ruleset = load(BASE, """
    - list: shells
      items: [zsh]
      override:
        items: replace
    """)
    assert ruleset.lists["shells"].items == ("zsh",)


def test_rule_override_appends_and_replaces_per_key() -> None:
    ruleset = load(BASE, """
    - rule: Shell
      condition: and user.name = root
      output: (user=%user.name)
      tags: [extra]
      priority: critical
      enabled: false
      override:
        condition: append
        output: append
        tags: append
        priority: replace
        enabled: replace
    """)
    (rule,) = ruleset.rules
    assert ruleset.inline(rule.condition) == parse_condition(
        "evt.type = execve and evt.dir = < and proc.name in (bash, sh) and user.name = root"
    )
    assert rule.condition_text == "spawned_process and proc.name in (shells) and user.name = root"
    assert rule.output == "shell %proc.name (user=%user.name)"
    assert rule.tags == ("extra", "process", "shell")
    assert rule.priority is Priority.CRITICAL
    assert rule.enabled is False


def test_rule_override_replace_of_condition_and_tags() -> None:
    ruleset = load(BASE, """
    - rule: Shell
      condition: evt.type = open
      tags: [only]
      override:
        condition: replace
        tags: replace
    """)
    (rule,) = ruleset.rules
    assert rule.condition == parse_condition("evt.type = open")
    assert rule.tags == ("only",)
    assert rule.output == "shell %proc.name"


def test_deprecated_rule_append_adds_condition_text_with_a_space() -> None:
    ruleset = load(BASE, """
    - rule: Shell
      append: true
      condition: and not proc.pname = sshd
    """)
    assert ruleset.rules[0].condition_text == "spawned_process and proc.name in (shells) and not proc.pname = sshd"
    assert ruleset.rules[0].condition.items[-1] == Not(Compare(FieldRef("proc.pname"), "=", Literal("sshd")))


def test_enabled_only_item_toggles_an_earlier_rule_with_a_deprecation_warning() -> None:
    ruleset = load(BASE, """
    - rule: Shell
      enabled: false
    """)
    assert ruleset.rules[0].enabled is False
    assert ruleset.enabled_rules() == ()
    assert [w.code for w in ruleset.warnings] == ["deprecated-enabled"]


def test_redefining_a_rule_replaces_it_in_its_first_place() -> None:
    ruleset = load("""
    - rule: First
      desc: d
      condition: evt.type = open
      output: o
      priority: debug
    - rule: Second
      desc: d
      condition: evt.type = close
      output: o
      priority: debug
    - rule: First
      desc: redefined
      condition: evt.type = read
      output: o2
      priority: error
    """)
    assert [rule.name for rule in ruleset.rules] == ["First", "Second"]
    assert ruleset.rule("First").desc == "redefined"
    assert ruleset.rule("First").condition == parse_condition("evt.type = read")


def test_redefining_a_rule_with_another_source_is_an_error() -> None:
    with pytest.raises(RuleLoadError, match="redefined with source 'k8s_audit'"):
        load(BASE, """
        - rule: Shell
          desc: d
          condition: ka.verb = create
          output: o
          priority: debug
          source: k8s_audit
        """)


def test_files_stack_in_order() -> None:
    ruleset = load(BASE, """
    - macro: spawned_process
      condition: evt.type = execveat
    """)
    assert ruleset.inline(ruleset.rules[0].condition).items[0] == parse_condition("evt.type = execveat")


def test_load_rules_reads_files_in_order(tmp_path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(textwrap.dedent(BASE))
    second = tmp_path / "b.yaml"
    second.write_text("- rule: Shell\n  enabled: false\n")
    ruleset = load_rules([first, second], registry_for=registry_for)
    assert ruleset.rules[0].enabled is False
    assert ruleset.rules[0].location.path == str(first)


def test_requirements_are_kept() -> None:
    ruleset = load("""
    - required_engine_version: 10
    - required_engine_version: 0.57.0
    - required_plugin_versions:
        - name: container
          version: 0.4.0
        - name: k8saudit
          version: 0.7.0
          alternatives:
            - name: k8saudit-eks
              version: 0.4.0
    """)
    assert ruleset.required_engine_version == "0.57.0"
    assert [[r.name for r in alternatives] for alternatives in ruleset.required_plugin_versions] == [
        ["container"], ["k8saudit", "k8saudit-eks"],
    ]


def test_other_sources_and_their_fields() -> None:
    ruleset = load("""
    - rule: K
      desc: d
      condition: ka.verb = create and jevt.value[/spec/hostNetwork] = true
      output: o
      priority: warning
      source: k8s_audit
    """)
    assert ruleset.rules[0].source == "k8s_audit"
    assert ruleset.warnings == ()  # warn_evttypes is only for syscall rules


def test_multiple_documents_and_null_items_are_read() -> None:
    ruleset = load_rules_text(
        "- list: a\n  items: [x]\n-\n---\n- rule: R\n  desc: d\n  condition: evt.type in (a)\n  output: o\n  priority: info\n",
        registry_for=registry_for,
    )
    assert ruleset.rules[0].condition == parse_condition("evt.type in (x)")


def test_block_scalar_desc_and_output_are_trimmed() -> None:
    ruleset = load("""
    - rule: R
      desc: >
        two
        lines
      condition: evt.type = open
      output: >
        opened %fd.name
      priority: info
    """)
    assert ruleset.rules[0].desc == "two lines"
    assert ruleset.rules[0].output == "opened %fd.name"


def test_appending_to_a_list_lets_it_see_lists_defined_before_the_append() -> None:
    ruleset = load("""
    - list: b
      items: [c]
    - list: c
      items: [y]
    - list: b
      items: [z]
      override:
        items: append
    - rule: R
      desc: d
      condition: evt.type = open and proc.name in (b)
      output: o
      priority: info
    """)
    assert ruleset.lists["b"].items == ("y", "z")


def test_loading_twice_gives_the_same_rules_and_warnings() -> None:
    loader = RulesLoader(registry_for=registry_for)
    loader.add_text(textwrap.dedent(BASE) + "- list: spare\n  items: [x]\n", "a.yaml")
    first, second = loader.load(), loader.load()
    assert first == second
    assert [w.code for w in second.warnings] == ["unused-list"]
