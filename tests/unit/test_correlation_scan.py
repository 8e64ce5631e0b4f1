"""File mode: `peregrine scan` feeds every event, in input order, to the same
CorrelationEvaluator the worker uses; a completed match is an Alert like a rule's."""

from __future__ import annotations

import correlation_fields
import orjson
import pytest
from correlation_helpers import DATA, RULES, events, peregrine_correlations

import pipeline.fields
from pipeline.alerts import falco_json_dict
from pipeline.cli.main import main
from pipeline.scan import Scanner


@pytest.fixture
def test_registries(monkeypatch):
    """scan, the loaders and the alert builder use pipeline.fields.registry_for: pin it."""
    monkeypatch.setattr(pipeline.fields, "registry_for", correlation_fields.registry_for, raising=False)


def test_scanner_gives_correlation_alerts_with_contributing_events():
    ruleset, correlations = peregrine_correlations()
    scanner = Scanner(ruleset, registry_for=correlation_fields.registry_for, source="syscall", hostname="h", correlations=correlations)
    alerts = [alert for event in events("drop_execute.jsonl") for alert in scanner.scan_event(event)]
    assert [a.rule for a in alerts] == ["Drop and execute"]
    alert = alerts[0]
    assert alert.output_fields["corr.group"] == {"container.id": "4f2a9c1d7e3b"}
    assert [e["id"] for e in alert.output_fields["corr.events"]] == [2000, 2002, 2005, 2007]
    assert alert.output.endswith(alert.message) and "Critical Dropped file executed in container 4f2a9c1d7e3b" in alert.output
    as_json = falco_json_dict(alert)
    assert as_json["rule"] == "Drop and execute" and as_json["uuid"] == alert.uuid
    again = Scanner(ruleset, registry_for=correlation_fields.registry_for, source="syscall", hostname="h", correlations=correlations)
    replayed = [a for event in events("drop_execute.jsonl") for a in again.scan_event(event)]
    assert replayed[0].uuid == alert.uuid  # a replay gives the same id


def test_peregrine_scan_runs_correlations_from_the_rules_files(test_registries, capsys):
    alerts = []
    for name in ("log4shell.jsonl", "drop_execute.jsonl", "fanout.jsonl"):  # each starts at the same event time
        code = main(["scan", "--json", "--quiet", "--source", "syscall", "--hostname", "h", "--rules", str(RULES), str(DATA / name)])
        assert code == 0
        alerts.extend(orjson.loads(line) for line in capsys.readouterr().out.splitlines())
    assert [a["rule"] for a in alerts] == ["Log4Shell exploitation chain", "Drop and execute", "Container fans out to many IPs"]
    assert alerts[0]["output_fields"]["corr.events"][2]["summary"].startswith("evt.type=connect proc.name=java")


def test_peregrine_scan_stops_on_a_bad_correlation(test_registries, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.read_text().replace("maxspan: 5m", "maxspan: 5y"))
    code = main(["scan", "--source", "syscall", "--rules", str(bad), str(DATA / "drop_execute.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:58:12: 'maxspan' must be a positive duration" in err and "nothing scanned" in err


def test_the_same_attack_again_later_is_another_alert_with_another_id():
    """A syscall event's ``evt.num`` restarts with the collector (and a collector without it
    gives ``<pid>/<evt.type>``): the same ids at other times are another match. With the ids
    alone in its uuid, the second match's alert was refused by OpenSearch as the first's
    (a demo run moved to the present again stored no Log4Shell chain)."""
    ruleset, correlations = peregrine_correlations()
    scanner = Scanner(ruleset, registry_for=correlation_fields.registry_for, source="syscall", hostname="h", correlations=correlations)
    first = events("drop_execute.jsonl")
    later = [dict(event, **{"evt.time": event["evt.time"] + 3600 * 1_000_000_000}) for event in first]
    alerts = [alert for event in first + later for alert in scanner.scan_event(event)]
    assert [a.rule for a in alerts] == ["Drop and execute"] * 2
    assert [e["id"] for e in alerts[0].output_fields["corr.events"]] == [e["id"] for e in alerts[1].output_fields["corr.events"]]
    assert alerts[0].uuid != alerts[1].uuid
