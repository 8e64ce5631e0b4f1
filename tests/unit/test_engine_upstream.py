"""Falco's own rule files through loader, compiler and engine: everything compiles, and
the engine agrees with the reference evaluator on events built from the rules' literals.

Syscall events are flat (``{"proc.name": "bash", "proc.aname[2]": "sshd"}``), so the
syscall files run with the real field registry (``pipeline.fields.registry_for``):
events carry each field under the key the registry reads, as text the way Falco
prints it, and the registry types it. K8s audit and CloudTrail events are nested
documents that flat literal pools cannot build, so those files are read with a
permissive registry (every field a flat string): that checks the language and the
engine there; tests/unit/test_upstream_rules.py binds them to the real registries.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pipeline.engine import Engine
from pipeline.fields import registry_for as real_registry_for
from pipeline.fields.registry import BoundField, FieldDef, FieldRegistry, FieldType
from pipeline.rules.ast import And, Compare, FieldRef, ListValue, Literal, MacroRef, Not, Or
from pipeline.rules.loader import load_rules
from pipeline.rules.reference import ReferenceEvaluator


class PermissiveRegistry(FieldRegistry):
    """Every field exists, is a string, and is read flat from the event dict."""

    def __init__(self, source: str) -> None:
        super().__init__(source, [], None)  # type: ignore[arg-type]

    def bind(self, name: str, arg: str | None = None) -> BoundField:
        key = name if arg is None else f"{name}[{arg}]"
        return BoundField(FieldDef(name, FieldType.STRING), arg, key, lambda e, k=key: e.get(k), flat_key=key)


def _literals(node: Any, macros: dict[str, Any], pools: dict[str, set[str]], seen: set[str]) -> None:
    if isinstance(node, Compare) and isinstance(node.left, FieldRef):
        key = node.left.name if node.left.arg is None else f"{node.left.name}[{node.left.arg}]"
        pool = pools.setdefault(key, set())
        if isinstance(node.right, Literal):
            pool.add(node.right.text)
        elif isinstance(node.right, ListValue):
            pool.update(item.text for item in node.right.items[:20])
    elif isinstance(node, MacroRef) and node.name not in seen and node.name in macros:
        seen.add(node.name)
        _literals(macros[node.name], macros, pools, seen)
    elif isinstance(node, Not):
        _literals(node.operand, macros, pools, seen)
    elif isinstance(node, (And, Or)):
        for item in node.items:
            _literals(item, macros, pools, seen)


@pytest.mark.parametrize(
    ("files", "registries", "min_rules_hit"),
    [
        (["falco_rules.yaml", "falco-incubating_rules.yaml"], "real", 5),
        (["falco_rules.yaml", "falco-sandbox_rules.yaml"], "real", 5),
        (["k8s_audit_rules.yaml"], "permissive", 5),
        (["aws_cloudtrail_rules.yaml"], "permissive", 5),
    ],
)
def test_upstream_rules_compile_and_agree_with_the_reference(upstream_rules_dir: Path, files: list[str], registries: str, min_rules_hit: int) -> None:
    registry_for = real_registry_for if registries == "real" else PermissiveRegistry
    ruleset = load_rules([upstream_rules_dir / name for name in files], registry_for=registry_for if registries == "real" else None)
    engine = Engine.from_ruleset(ruleset, registry_for, rule_matching="all")
    fallbacks: list[Any] = []
    for source in engine.sources:  # count the events the fast code hands to the reference evaluator
        namespace = engine.evaluator(source).__globals__
        namespace["_slow"] = lambda e, f, _slow=namespace["_slow"]: fallbacks.append(e) or _slow(e, f)
    macros = dict(ruleset.macro_conditions)
    pools: dict[str, set[str]] = {}
    for rule in ruleset.rules:
        _literals(rule.condition, macros, pools, set())
    fields = sorted(pools)
    choices = {key: sorted(pool) + ["", "x", "/tmp/x"] for key, pool in pools.items()}
    references = {s: ReferenceEvaluator(registry_for(s), macros) for s in engine.sources}
    rng = random.Random(7)
    matched = 0
    hit: set[str] = set()
    for _ in range(400):
        event = {key: rng.choice(choices[key]) for key in fields if rng.random() < 0.8}
        for source in engine.sources:
            expected = [rule for rule in ruleset.rules if rule.enabled and rule.source == source and references[source].evaluate(rule.condition, event)]
            assert list(engine.evaluate(event, source)) == expected
            matched += len(expected)
            hit.update(rule.name for rule in expected)
    assert matched > 20, matched
    assert len(hit) >= min_rules_hit, sorted(hit)
    assert fallbacks == []  # the compiled code itself agreed, not the reference standing in for it
