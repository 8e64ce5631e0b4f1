"""Polaris's score: 2 points a success, a failed warning costs 1, a failed danger 2, truncated as Go does."""

from __future__ import annotations

from pipeline.audit.evaluate import Finding
from pipeline.audit.score import Summary, score, summarize


def _f(success: bool, severity: str = "warning") -> Finding:
    return Finding("c", success, severity, "Security", "", "Pod", "", "p", None)


def test_formula():
    assert Summary(0, 0, 0).score == 100  # nothing audited
    assert Summary(10, 0, 0).score == 100
    assert Summary(0, 3, 1).score == 0
    assert Summary(1, 1, 0).score == 66  # 2/3
    assert Summary(1, 0, 1).score == 50  # 2/4
    assert Summary(5, 15, 7).score == 25  # 10/39


def test_float_truncation_as_go():
    # 2s/total = 0.58 exactly in decimal, 57.99999... in float64: Polaris reports 57
    assert Summary(29, 42, 0).score == 57


def test_summarize_counts_severities():
    findings = [_f(True), _f(False, "warning"), _f(False, "danger"), _f(True)]
    assert summarize(findings) == Summary(2, 1, 1)
    assert score(findings) == 57  # 4/7
