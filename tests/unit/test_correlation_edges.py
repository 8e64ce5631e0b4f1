"""Correlation edge cases from a review of the engine against docs/rules.md, through
`peregrine scan` with the real registries (files in tests/data/correlation/edges/).
Each was a missed detection or a false or duplicate alert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EDGES = ROOT / "tests" / "data" / "correlation" / "edges"


def scan(capsys, rules: Path, events: str) -> list[tuple[str, list]]:
    code = main(["scan", "--rules", str(rules), "--json", "-q", str(EDGES / events)])
    out = capsys.readouterr().out
    assert code == 0
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(a["rule"], [e["id"] for e in a["output_fields"].get("corr.events", [])]) for a in alerts]


def test_a_decoy_write_does_not_evade_drop_and_execute(capsys):
    """The shell's first write advanced its only partial match, and the payload's write found
    none left to advance: `curl -o /tmp/other ...; curl -o /tmp/.x ...; /tmp/.x` went unseen."""
    alerts = scan(capsys, ROOT / "rules" / "peregrine_correlations.yaml", "s3_decoy.jsonl")
    assert [rule for rule, _ in alerts] == ["Drop and execute"]


def test_one_event_delivered_twice_does_not_complete_a_sequence_by_itself(capsys):
    assert scan(capsys, EDGES / "seq2.yaml", "s2_dup.jsonl") == []


def test_events_a_threshold_counted_do_not_count_again_when_replayed(capsys):
    """Events 1-4, then 1 and 2 again (a replay after a crash): a second alert over [1, 2, 4]."""
    assert scan(capsys, EDGES / "thr.yaml", "t1_replay_partial.jsonl") == [
        ("Three opens", [1, 2, 3]), ("Three opens throttled", [1, 2, 3])]


def test_cloudtrail_and_k8s_audit_events_are_known_by_their_own_ids(capsys):
    """CloudTrail's eventID was never read (evt.num came first), so a replay counted again; each
    stage of a K8s audit request counted as another event (same auditID, another time)."""
    assert scan(capsys, EDGES / "ct.yaml", "c2_replay.jsonl") == []
    assert scan(capsys, EDGES / "k8s.yaml", "k1_stages.jsonl") == []


def test_a_throttle_holds_for_a_match_completed_by_older_events(capsys):
    alerts = scan(capsys, EDGES / "thr.yaml", "t2_throttle_ooo.jsonl")
    assert [rule for rule, _ in alerts].count("Three opens throttled") == 1


@pytest.mark.parametrize(("rules", "events"), [("dist.yaml", "d1_missing.jsonl"), ("until.yaml", "u1_na.jsonl")])
def test_falcos_na_is_no_value_for_a_group_a_distinct_count_or_a_binding(capsys, rules, events):
    assert scan(capsys, EDGES / rules, events) == []
