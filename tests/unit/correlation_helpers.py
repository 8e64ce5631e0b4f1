"""Helpers for the correlation tests: load rules text or Peregrine's correlation
rules with the test registries, read the JSONL events, run an evaluator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from correlation_fields import registry_for

from pipeline.correlation import CorrelationEvaluator, CorrelationLimits
from pipeline.correlation.parse import CorrelationLoader
from pipeline.rules.loader import RulesLoader

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "correlation"
RULES = ROOT / "rules" / "peregrine_correlations.yaml"
S = 1_000_000_000


def load_text(text: str, path: str = "test.yaml", limits: CorrelationLimits | None = None, prefix: str | None = None):
    """(RuleSet, correlations) of rules text, optionally after the text of another file."""
    rules = RulesLoader(registry_for=registry_for)
    correlations = CorrelationLoader(limits=limits, registry_for=registry_for)
    if prefix is not None:
        rules.add_text(prefix, "prefix.yaml")
        correlations.add_text(prefix, "prefix.yaml")
    rules.add_text(text, path)
    correlations.add_text(text, path)
    ruleset = rules.load()
    return ruleset, correlations.load(ruleset)


def peregrine_correlations(limits: CorrelationLimits | None = None):
    return load_text(RULES.read_text(), str(RULES), limits)


def events(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluator(correlations, limits: CorrelationLimits | None = None, store=None, only: str | None = None) -> CorrelationEvaluator:
    chosen = [c for c in correlations if only is None or c.name == only]
    return CorrelationEvaluator(chosen, registry_for, limits=limits, store=store)


def run(ev: CorrelationEvaluator, stream, source: str = "syscall"):
    alerts = []
    for event in stream:
        alerts.extend(ev.process(event, source))
    return alerts
