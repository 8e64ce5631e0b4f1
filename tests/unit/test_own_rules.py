"""Peregrine's own rules on their example events, through the real field registries
(``pipeline.fields.registry_for``): each positive event fires exactly its rule (with
every rule evaluated), each negative event fires nothing, and the compiled code
decides on its own (no event handed to the reference evaluator)."""

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
    return load_rules(RULES, registry_for=registry_for)


@pytest.fixture(scope="module")
def fallbacks() -> list:
    return []


@pytest.fixture(scope="module")
def engine(ruleset, fallbacks):
    engine = Engine.from_ruleset(ruleset, registry_for, rule_matching="all")
    for source in engine.sources:  # record events the fast code hands to the reference evaluator
        namespace = engine.evaluator(source).__globals__
        namespace["_slow"] = lambda e, f, _slow=namespace["_slow"]: fallbacks.append(e) or _slow(e, f)
    return engine


def test_own_rules_load_cleanly_with_every_rule_exemplified(ruleset):
    assert ruleset.warnings == ()
    assert sorted(rule.name for rule in ruleset.rules) == sorted(EXAMPLES.values())
    for rule in ruleset.rules:
        assert rule.desc and rule.output and rule.tags
        assert any(tag.startswith("T1") for tag in rule.tags), rule.name


@pytest.mark.parametrize("slug,rule_name", sorted(EXAMPLES.items()))
def test_positive_examples_fire_exactly_their_rule(engine, fallbacks, slug, rule_name):
    examples = events(f"{slug}.positive.jsonl")
    assert len(examples) >= 2
    for event in examples:
        source = detect_source(event)
        assert [rule.name for rule in engine.evaluate(event, source)] == [rule_name], event
    assert fallbacks == []


@pytest.mark.parametrize("slug", sorted(EXAMPLES))
def test_negative_examples_fire_nothing(engine, fallbacks, slug):
    examples = events(f"{slug}.negative.jsonl")
    assert len(examples) >= 2
    for event in examples:
        source = detect_source(event)
        assert source is not None
        assert engine.evaluate(event, source) == (), event
    assert fallbacks == []


def test_own_rules_stack_after_falcos_without_changing_either(upstream_rules_dir):
    """Our pg_-prefixed macros and lists leave Falco's alone: stacked after falco_rules.yaml,
    every positive still fires its rule and Falco's rules keep their conditions."""
    falco = load_rules([upstream_rules_dir / "falco_rules.yaml"], registry_for=registry_for)
    stacked = load_rules([upstream_rules_dir / "falco_rules.yaml", *RULES], registry_for=registry_for)
    assert stacked.warnings == ()
    assert {name: cond for name, cond in stacked.macro_conditions.items() if name in falco.macro_conditions} == dict(falco.macro_conditions)
    engine = Engine.from_ruleset(stacked, registry_for, rule_matching="all")
    for slug, rule_name in EXAMPLES.items():
        for event in events(f"{slug}.positive.jsonl"):
            assert rule_name in [rule.name for rule in engine.evaluate(event, detect_source(event))], (slug, event)
