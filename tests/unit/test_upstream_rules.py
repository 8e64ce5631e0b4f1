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


# ---------------------------------------------------------------- compiled with the real field registries

# file(s) -> (rules loaded, rules enabled); disabled rules are Falco's `enabled: false` ones
ENGINE_CASES = {
    ("falco_rules.yaml",): (25, 25),
    ("falco-incubating_rules.yaml",): (31, 31),
    ("falco-sandbox_rules.yaml",): (37, 25),
    ("k8s_audit_rules.yaml",): (48, 48),
    ("aws_cloudtrail_rules.yaml",): (22, 20),
    ("falco_rules.yaml", "falco-incubating_rules.yaml"): (56, 56),
    ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"): (93, 81),
}


def _engine(upstream_rules_dir, files):
    from pipeline.engine import Engine
    from pipeline.fields import registry_for

    ruleset = load_rules([upstream_rules_dir / name for name in files], registry_for=registry_for, collect_errors=True)
    return ruleset, Engine.from_ruleset(ruleset, registry_for, rule_matching="all")


@pytest.mark.parametrize("files", sorted(ENGINE_CASES), ids=["+".join(f) for f in sorted(ENGINE_CASES)])
def test_upstream_files_compile_into_an_engine_with_the_real_field_registries(upstream_rules_dir, files) -> None:
    ruleset, engine = _engine(upstream_rules_dir, files)
    loaded, enabled = ENGINE_CASES[files]
    assert len(ruleset.rules) == loaded
    assert ruleset.warnings == ()  # no rule skipped for an unknown field (skip-if-unknown-filter)
    # no rule silently dropped: the engine holds every enabled rule, in file order, under its source
    expected = [rule for rule in ruleset.rules if rule.enabled]
    assert len(expected) == enabled
    assert [rule for source in engine.sources for rule in engine.rules(source)] == expected
    disabled = {rule.name for rule in ruleset.rules if not rule.enabled}
    assert all(rule.name not in disabled for source in engine.sources for rule in engine.rules(source))
    # every rule sits in at least one event-type bucket (or the one for other types)
    if "syscall" in engine.sources:
        assert set(engine.evttypes("syscall")) == {rule.name for rule in expected}
        assert all(types.complement or types.names for types in engine.evttypes("syscall").values())


def _names(rules) -> list[str]:
    return [rule.name for rule in rules]


def test_upstream_syscall_rules_fire_on_flat_events_through_the_real_registry(upstream_rules_dir) -> None:
    _, engine = _engine(upstream_rules_dir, ("falco_rules.yaml", "falco-incubating_rules.yaml"))
    shell = {
        "evt.type": "execve", "evt.dir": "<", "evt.time": 1714564860000000000,
        "proc.name": "bash", "proc.exepath": "/bin/bash", "proc.cmdline": "bash", "proc.pname": "runc", "proc.tty": "34816",
        "proc.pid": 4242, "proc.ppid": 4200, "user.name": "root", "user.uid": 0,
        "container.id": "3ad7b26ded6d", "container.name": "web", "container.image.repository": "nginx",
    }
    assert "Terminal shell in container" in _names(engine.evaluate(shell, "syscall"))
    assert "Terminal shell in container" not in _names(engine.evaluate({**shell, "proc.tty": "0"}, "syscall"))
    assert "Terminal shell in container" not in _names(engine.evaluate({**shell, "container.id": "host"}, "syscall"))
    read_shadow = {
        "evt.type": "openat", "evt.dir": "<", "evt.is_open_read": "true", "evt.arg.flags": "O_RDONLY", "fd.typechar": "f", "fd.num": 3,
        "fd.name": "/etc/shadow", "fd.directory": "/etc", "fd.filename": "shadow",
        "proc.name": "cat", "proc.exepath": "/usr/bin/cat", "proc.cmdline": "cat /etc/shadow", "proc.pname": "bash",
        "proc.aname[2]": "sshd", "user.name": "root", "user.uid": 0, "container.id": "host",
    }
    assert "Read sensitive file untrusted" in _names(engine.evaluate(read_shadow, "syscall"))
    assert "Read sensitive file untrusted" not in _names(engine.evaluate({**read_shadow, "fd.name": "/etc/hosts", "fd.filename": "hosts"}, "syscall"))
    assert "Read sensitive file untrusted" not in _names(engine.evaluate({**read_shadow, "proc.name": "sshd"}, "syscall"))


def test_upstream_any_ancestor_macros_match_when_one_ancestor_does(upstream_rules_dir) -> None:
    """falco_rules.yaml's run_by_package_mgmt_binaries is `proc.aname in (package_mgmt_binaries,
    needrestart)`: true when some ancestor is a package manager, not only when all are."""
    from pipeline.fields import registry_for
    from pipeline.rules.compiler import compile_condition
    from pipeline.rules.reference import ReferenceEvaluator

    ruleset = load_rules([upstream_rules_dir / "falco_rules.yaml"], registry_for=registry_for)
    macros = dict(ruleset.macro_conditions)
    registry = registry_for("syscall")
    compiled = compile_condition(macros["run_by_package_mgmt_binaries"], macros, registry)
    reference = ReferenceEvaluator(registry, macros)
    cases = [
        ({"proc.name": "sh", "proc.pname": "bash", "proc.aname[2]": "dpkg", "proc.aname[3]": "sshd"}, True),
        ({"proc.name": "sh", "proc.aname": ["bash", "needrestart", "systemd"]}, True),
        ({"proc.name": "dpkg", "proc.pname": "bash", "proc.aname[2]": "sshd"}, False),  # [0], the process, is no ancestor
        ({"proc.name": "sh", "proc.pname": "bash", "proc.aname[2]": "sshd"}, False),
        ({"proc.name": "sh"}, False),
    ]
    for event, expected in cases:
        assert compiled(event) is expected, event
        assert reference.evaluate(macros["run_by_package_mgmt_binaries"], event) is expected, event


def test_upstream_k8s_audit_and_cloudtrail_rules_fire_on_raw_events(upstream_rules_dir) -> None:
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data" / "events"

    def events(name: str) -> list[dict]:
        return [json.loads(line) for line in (data / name).read_text().splitlines() if line.strip()]

    _, k8s = _engine(upstream_rules_dir, ("k8s_audit_rules.yaml",))
    assert all("Create Privileged Pod" in _names(k8s.evaluate(e, "k8s_audit")) for e in events("k8s_audit_privileged_pod.positive.jsonl"))
    assert not any("Create Privileged Pod" in _names(k8s.evaluate(e, "k8s_audit")) for e in events("k8s_audit_privileged_pod.negative.jsonl"))
    _, cloudtrail = _engine(upstream_rules_dir, ("aws_cloudtrail_rules.yaml",))
    assert all("Console Login Without MFA" in _names(cloudtrail.evaluate(e, "aws_cloudtrail")) for e in events("cloudtrail_console_login.positive.jsonl"))
    assert not any("Console Login Without MFA" in _names(cloudtrail.evaluate(e, "aws_cloudtrail")) for e in events("cloudtrail_console_login.negative.jsonl"))
