"""Reading `- correlation:` items: the format, overrides, and every error at file:line:col."""

from __future__ import annotations

import pytest
from correlation_fields import registry_for
from correlation_helpers import S, load_text

from pipeline.correlation import CorrelationLimits, DistinctCount, Sequence, Threshold
from pipeline.correlation.parse import parse_duration
from pipeline.errors import RuleLoadError
from pipeline.rules.loader import load_rules_text

BASE = """\
- macro: spawned
  condition: evt.type = execve and evt.dir = <
- list: shells
  items: [sh, bash]
- rule: Shell spawned
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: shell %proc.name
  priority: NOTICE
"""


def error_of(text: str, **options) -> RuleLoadError:
    with pytest.raises(RuleLoadError) as caught:
        load_text(text, "c.yaml", prefix=BASE, **options)
    return caught.value


SEQUENCE = """\
- correlation: Shell then write
  type: sequence
  maxspan: 30s
  steps:
    - rule: Shell spawned
    - condition: evt.type = openat and proc.name in (shells)
      bind: {path: fd.name}
    - name: run
      condition: spawned
      match: {proc.exepath: path}
  output: "%step.run.proc.cmdline after %step.step2.fd.name in %corr.group"
  priority: warning
  tags: [a]
"""


def test_a_sequence_with_defaults_rule_steps_and_bindings():
    _, (seq,) = load_text(SEQUENCE, "c.yaml", prefix=BASE)
    assert isinstance(seq, Sequence)
    assert seq.by == ("container.id",) and seq.source == "syscall"
    assert seq.maxspan_ns == 30 * S
    assert [s.name for s in seq.steps] == ["step1", "step2", "run"]
    assert seq.steps[0].rule == "Shell spawned"
    assert seq.steps[1].bind_names == (("path", "fd.name"),)
    assert seq.steps[2].match_names == (("proc.exepath", "path"),)
    assert seq.priority.label == "Warning" and seq.tags == ("a",) and seq.enabled


def test_threshold_and_distinct_items():
    text = """\
- correlation: Many shells
  type: threshold
  rule: Shell spawned
  by: [container.id, user.name]
  window: 1m
  count: 5
  output: "%corr.count shells by %user.name"
  priority: NOTICE
- correlation: Many files
  type: distinct
  condition: evt.type = openat
  field: fd.name
  window: 10s
  count: 3
  throttle: 5m
  output: "%corr.distinct files"
  priority: INFO
"""
    _, (threshold, distinct) = load_text(text, "c.yaml", prefix=BASE)
    assert isinstance(threshold, Threshold) and threshold.by == ("container.id", "user.name") and threshold.count == 5
    assert isinstance(distinct, DistinctCount) and distinct.field_name == "fd.name" and distinct.throttle_ns == 300 * S


def test_override_replaces_and_appends_like_rules():
    override = """\
- correlation: Shell then write
  maxspan: 10s
  enabled: false
  tags: [b]
  override: {maxspan: replace, enabled: replace, tags: append}
"""
    _, (seq,) = load_text(SEQUENCE + override, "c.yaml", prefix=BASE)
    assert seq.maxspan_ns == 10 * S and not seq.enabled and seq.tags == ("a", "b")


def test_upstream_style_files_without_correlations_load_unchanged():
    ruleset = load_rules_text(BASE, "b.yaml", registry_for=registry_for)
    assert [r.name for r in ruleset.rules] == ["Shell spawned"]
    with_corr = load_rules_text(BASE + SEQUENCE, "b.yaml", registry_for=registry_for)
    assert [r.name for r in with_corr.rules] == ["Shell spawned"]
    assert not [w for w in with_corr.warnings if w.code == "unknown-item"]


def test_durations():
    assert parse_duration("30s") == 30 * S and parse_duration("5m") == 300 * S
    assert parse_duration("1h") == 3600 * S and parse_duration("250ms") == 250_000_000 and parse_duration("7") == 7 * S
    assert parse_duration("5 minutes") is None


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("- correlation: X\n  type: window\n", "c.yaml:2:9", "invalid correlation type 'window'"),
        ("- correlation: X\n  type: sequence\n  maxspan: 1m\n  stepz: []\n", "c.yaml:4:3", "unknown key 'stepz'"),
        (SEQUENCE.replace("rule: Shell spawned", "rule: No such rule"), "c.yaml:5:13", "unknown rule 'No such rule'"),
        (SEQUENCE.replace("maxspan: 30s", "maxspan: 2h"), "c.yaml:3:12", "max_window (1h)"),
        (SEQUENCE.replace("maxspan: 30s", "maxspan: soon"), "c.yaml:3:12", "positive duration"),
        (SEQUENCE.replace("evt.type = openat and", "evt.type = openat and and"), "c.yaml:6:40", "unexpected 'and'"),
        (SEQUENCE.replace("proc.name in (shells)\n", "proc.nam in (shells)\n"), "c.yaml:6:40", "unknown field 'proc.nam'"),
        (SEQUENCE.replace("condition: spawned\n", "condition: spawnd\n"), "c.yaml:9:18", "undefined macro 'spawnd'"),
        (SEQUENCE.replace("match: {proc.exepath: path}", "match: {proc.exepath: pth}"), "c.yaml:10:29", "'pth' is not bound"),
        (SEQUENCE.replace("%step.run.proc", "%step.walk.proc"), "c.yaml:11:13", "names no step"),
        (SEQUENCE.replace("priority: warning", "priority: loud"), "c.yaml:12:13", "invalid priority"),
        (SEQUENCE.replace("  maxspan: 30s\n", "  maxspan: 30s\n  by: [container.idd]\n"), "c.yaml:4:8", "unknown field 'container.idd'"),
        (SEQUENCE + SEQUENCE.replace("type: sequence", "type: threshold"), "c.yaml:14:16", "already defined at c.yaml:1:3"),
    ],
)
def test_malformed_items_are_errors_at_file_line_col(text, where, message):
    error = error_of(text)
    assert str(error.location) == where, str(error)
    assert message in error.message
    assert "^" in str(error)


def test_a_maxspan_over_a_configured_limit_names_the_limit():
    error = error_of(SEQUENCE, limits=CorrelationLimits(max_window_ns=20 * S))
    assert "max_window (20s)" in error.message and str(error.location) == "c.yaml:3:12"


def test_a_threshold_count_over_the_limit_is_refused():
    text = "- correlation: T\n  type: threshold\n  condition: spawned\n  window: 1m\n  count: 50\n  output: x\n  priority: INFO\n"
    error = error_of(text, limits=CorrelationLimits(max_count=10))
    assert "max_count (10)" in error.message and str(error.location) == "c.yaml:5:10"


def test_limits_from_settings():
    limits = CorrelationLimits.from_settings({"max_window": "2h", "allowed_lateness": "30s", "throttle": "10m", "max_groups": "5000"})
    assert limits.max_window_ns == 7200 * S and limits.allowed_lateness_ns == 30 * S and limits.throttle_ns == 600 * S
    assert limits.max_groups == 5000 and limits.max_partials_per_group == CorrelationLimits().max_partials_per_group
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="allowed_lateness must be a duration"):
        CorrelationLimits.from_settings({"allowed_lateness": "soon"})
    with pytest.raises(ConfigError, match="unknown correlation setting 'max_span'"):
        CorrelationLimits.from_settings({"max_span": "1h"})
    with pytest.raises(ConfigError, match="max_groups must be at least 1"):
        CorrelationLimits.from_settings({"max_groups": 0})
