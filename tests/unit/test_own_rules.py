"""Peregrine's own rules on their example events: each positive event fires exactly
its rule (with every rule evaluated), each negative event fires nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.engine import Engine
from pipeline.fields import detect_source, registry_for  # type: ignore[attr-defined]
from pipeline.rules.loader import load_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "rules").glob("peregrine_*_rules.yaml"))
EVENTS = ROOT / "tests" / "data" / "events"

EXAMPLES = {
    "syscall_interactive_shell": "Interactive shell in container",
    "syscall_exec_bit": "Container drift by exec bit",
    "syscall_k8s_client": "Kubernetes client run in container",
    "syscall_java_shell": "Java process spawned shell or downloader",
    "syscall_java_ldap": "Outbound LDAP connection from Java process",
    "syscall_java_class": "Java process wrote class file",
    "k8s_audit_privileged_pod": "Privileged pod created",
    "cloudtrail_console_login": "AWS console login without MFA",
}


def events(name: str) -> list[dict]:
    lines = (EVENTS / name).read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(RULES)


@pytest.fixture(scope="module")
def engine(ruleset):
    return Engine.from_ruleset(ruleset, registry_for, rule_matching="all")


def test_own_rules_load_cleanly_with_every_rule_exemplified(ruleset):
    assert ruleset.warnings == ()
    assert sorted(rule.name for rule in ruleset.rules) == sorted(EXAMPLES.values())
    for rule in ruleset.rules:
        assert rule.desc and rule.output and rule.tags
        assert any(tag.startswith("T1") for tag in rule.tags), rule.name


@pytest.mark.parametrize("slug,rule_name", sorted(EXAMPLES.items()))
def test_positive_examples_fire_exactly_their_rule(engine, slug, rule_name):
    examples = events(f"{slug}.positive.jsonl")
    assert len(examples) >= 2
    for event in examples:
        source = detect_source(event)
        assert [rule.name for rule in engine.evaluate(event, source)] == [rule_name], event


@pytest.mark.parametrize("slug", sorted(EXAMPLES))
def test_negative_examples_fire_nothing(engine, slug):
    examples = events(f"{slug}.negative.jsonl")
    assert len(examples) >= 2
    for event in examples:
        source = detect_source(event)
        assert source is not None
        assert engine.evaluate(event, source) == (), event
