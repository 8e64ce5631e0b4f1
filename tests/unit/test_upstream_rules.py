"""Falco's own rules files load with no error, alone and stacked as Falco loads them,
and every rule compiles for its source's field registry.

Counts are of what Falco defines: falco-sandbox_rules.yaml has 183 macros, one
of them written ``- condition: ...`` / ``macro: recon_binaries_procs`` (so a
grep for ``- macro:`` finds 182).
"""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.rules.loader import load_rules
from pipeline.rules.model import Priority, RuleSet

# file -> (rules, macros, lists, rule sources)
COUNTS = {
    "falco_rules.yaml": (25, 87, 49, {"syscall"}),
    "falco-incubating_rules.yaml": (31, 82, 54, {"syscall"}),
    "falco-sandbox_rules.yaml": (37, 183, 60, {"syscall"}),
    "k8s_audit_rules.yaml": (48, 45, 18, {"k8s_audit"}),
    "aws_cloudtrail_rules.yaml": (22, 0, 1, {"aws_cloudtrail"}),
}
SYSCALL_STACK = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]


def counts(ruleset: RuleSet) -> tuple[int, int, int, set[str]]:
    return len(ruleset.rules), len(ruleset.macros), len(ruleset.lists), {rule.source for rule in ruleset.rules}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_upstream_file_loads_on_its_own(upstream_rules_dir, name: str) -> None:
    ruleset = load_rules([upstream_rules_dir / name], collect_errors=True)
    assert counts(ruleset) == COUNTS[name]
    assert ruleset.warnings == ()  # Falco's CI keeps these files free of load warnings
    assert ruleset.required_engine_version is not None
    assert ruleset.required_plugin_versions


def test_the_syscall_files_stack(upstream_rules_dir) -> None:
    ruleset = load_rules([upstream_rules_dir / name for name in SYSCALL_STACK], collect_errors=True)
    # no rule name repeats across the three files; shared macros and lists are redefined (later wins)
    assert len(ruleset.rules) == sum(COUNTS[name][0] for name in SYSCALL_STACK) == 93
    assert len(ruleset.macros) == 315
    assert len(ruleset.lists) == 118
    assert [rule.name for rule in ruleset.rules[:25]] == [
        rule.name for rule in load_rules([upstream_rules_dir / "falco_rules.yaml"]).rules
    ]
    assert ruleset.warnings == ()


def test_upstream_values_are_read_as_falco_reads_them(upstream_rules_dir) -> None:
    ruleset = load_rules([upstream_rules_dir / "falco_rules.yaml"])
    priorities = {rule.priority for rule in ruleset.rules}
    assert Priority.CRITICAL in priorities and Priority.WARNING in priorities
    assert all(rule.tags and rule.tags[0].startswith("maturity_") or "maturity_stable" in rule.tags for rule in ruleset.rules)
    assert all(rule.output and rule.desc for rule in ruleset.rules)
    cloudtrail = load_rules([upstream_rules_dir / "aws_cloudtrail_rules.yaml"])
    assert cloudtrail.rule("All Cloudtrail Events").enabled is False


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_field_and_macro_position_maps_back_to_its_text_in_the_file(upstream_rules_dir, name: str) -> None:
    """The scalar aligner on real files: each field or macro name in every condition, mapped to
    the file, sits exactly where the file spells it, whatever the YAML style (block, plain, quoted)."""
    from pipeline.rules.ast import MacroRef
    from pipeline.rules.parser import parse_condition
    from pipeline.rules.resolve import field_refs, macro_refs
    from pipeline.rules.yaml_source import ScalarText, SourceText, compose_documents, offset_in

    source = SourceText.of((upstream_rules_dir / name).read_text(encoding="utf-8"), name)
    checked = 0
    styles = set()
    for document in compose_documents(source):
        for item in document.value:
            for key, value in item.value:
                if key.value != "condition":
                    continue
                scalar = ScalarText(source, value)
                styles.add(value.style or "plain")
                node = parse_condition(scalar.text)
                refs: list = [*field_refs(node), *macro_refs(node)]
                for ref in refs:
                    location, line = scalar.locate(offset_in(scalar.text, ref.pos.line, ref.pos.col))
                    assert line[location.col - 1 :].startswith(ref.name), (name, location, ref)
                    assert isinstance(ref, MacroRef) or "." in ref.name
                    checked += 1
    assert checked > 20
    if name != "aws_cloudtrail_rules.yaml":
        assert {">", "plain"} <= styles  # folded block scalars and plain scalars both checked
