"""`peregrine scan` and the worker's batch processor run the live Polaris audit on K8s audit events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from live_audit_events import as_request, audit_event, hardened_pod, privileged_pod
from pipeline import metrics
from pipeline.cli.main import main
from pipeline.stream.batch import Message
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
K8S_RULES = str(ROOT / "rules" / "peregrine_k8s_audit_rules.yaml")
PRIVILEGED = "Polaris runAsPrivileged: Should not be running as privileged"


def events_file(tmp_path: Path) -> Path:
    pod = privileged_pod("debug", "shop")
    events = [
        audit_event("create", "pods", name="debug", request=as_request(pod), response=pod, user="alice@example.com"),
        audit_event("create", "pods", name="api", request=as_request(hardened_pod("api")), response=hardened_pod("api"),
                    audit_id="7d0b6a52-3c1e-4b8f-9e2a-00000000a002"),
        audit_event("create", "pods", name="other", level="Metadata", audit_id="7d0b6a52-3c1e-4b8f-9e2a-00000000a003"),
        audit_event("delete", "pods", name="debug", response=pod, audit_id="7d0b6a52-3c1e-4b8f-9e2a-00000000a004"),
    ]
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


def scan(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(["scan", "--json", "--hostname", "test-host", "--rules", K8S_RULES, *args])
    captured = capsys.readouterr()
    return code, [orjson.loads(line) for line in captured.out.splitlines()], captured.err


def test_scan_reports_failed_checks_with_the_rules_alerts(capsys, tmp_path):
    code, alerts, err = scan(capsys, str(events_file(tmp_path)))
    assert code == 0
    assert Counter(a["rule"] for a in alerts) == Counter({"Privileged pod created": 1, PRIVILEGED: 1})
    polaris = next(a for a in alerts if a["rule"] == PRIVILEGED)
    assert polaris["priority"] == "Error" and polaris["source"] == "k8s_audit" and polaris["hostname"] == "test-host"
    assert polaris["output_fields"]["ka.user.name"] == "alice@example.com"
    assert polaris["output_fields"]["polaris.container"] == "shell"
    assert "4 events" in err and "2 alerts, 0 bad lines" in err
    assert "live audit: 2 objects audited; skipped: 1 no_object" in err


def test_scan_reports_an_objects_failures_once_and_counts_the_repeats(capsys, tmp_path):
    pod = privileged_pod("debug", "shop")
    labelled = privileged_pod("debug", "shop")
    labelled["metadata"]["labels"]["team"] = "payments"  # an operator's metadata-only update
    events = [audit_event("create", "pods", name="debug", request=as_request(pod), response=pod, audit_id="r-1"),
              audit_event("update", "pods", name="debug", request=as_request(labelled), response=labelled, audit_id="r-2"),
              audit_event("patch", "pods", name="debug", response=pod, audit_id="r-3")]
    path = tmp_path / "repeats.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    code, alerts, err = scan(capsys, "--min-priority", "error", str(path))
    assert code == 0
    assert [(a["rule"], a["output_fields"]["ka.auditid"]) for a in alerts] == [(PRIVILEGED, "r-1")]
    assert "live audit: 3 objects audited (2 unchanged since their failures were reported)" in err


def test_no_config_audit_turns_it_off(capsys, tmp_path):
    code, alerts, err = scan(capsys, "--no-config-audit", str(events_file(tmp_path)))
    assert code == 0
    assert [a["rule"] for a in alerts] == ["Privileged pod created"]
    assert "live audit" not in err


def test_audit_config_sets_the_severities(capsys, tmp_path):
    config = tmp_path / "polaris.yaml"
    config.write_text("checks:\n  runAsPrivileged: warning\n  tagNotSpecified: danger\n")
    code, alerts, _ = scan(capsys, "--audit-config", str(config), str(events_file(tmp_path)))
    assert code == 0
    assert [(a["rule"], a["priority"]) for a in alerts if a["rule"].startswith("Polaris")] == [(PRIVILEGED, "Warning")]
    code, alerts, _ = scan(capsys, "--audit-config", str(config), "--min-priority", "error", str(events_file(tmp_path)))
    assert [a["rule"] for a in alerts] == []  # the rule is a Warning too


def test_a_bad_audit_config_stops_the_scan(capsys, tmp_path):
    config = tmp_path / "polaris.yaml"
    config.write_text("checks:\n  runAsPrivileged: fatal\n")
    assert main(["scan", "--audit-config", str(config), str(events_file(tmp_path))]) == 2
    assert "severity 'fatal'" in capsys.readouterr().err


ENV = {"PEREGRINE_RULES": K8S_RULES}


def test_worker_processor_alerts_on_k8s_audit_messages(tmp_path):
    from pipeline.stream.delivery import build_processor

    settings = PipelineSettings.from_env(ENV)
    assert settings.config_audit is True
    processor = build_processor(settings)
    value = events_file(tmp_path).read_bytes()
    before = {o: metrics.LIVE_AUDIT.labels(o)._value.get() for o in ("audited", "no_object", "owned")}
    result = processor.process([Message(settings.k8s_audit_topic, 0, 3, b"shop", value)], None)
    after = {o: metrics.LIVE_AUDIT.labels(o)._value.get() for o in ("audited", "no_object", "owned")}
    assert {o: after[o] - before[o] for o in after} == {"audited": 2, "no_object": 1, "owned": 0}
    assert result.dead_letters == []
    assert sorted(a.rule for _, a in result.alerts) == [PRIVILEGED, "Privileged pod created"]
    assert {key for key, _ in result.alerts} == {b"shop"}
    assert processor.scanner.live_audit.counts == {"audited": 2, "no_object": 1}


def test_worker_settings_turn_it_off_or_give_a_config(tmp_path):
    from pipeline.errors import AuditError, ConfigError
    from pipeline.stream.delivery import build_processor

    off = build_processor(PipelineSettings.from_env(ENV | {"PEREGRINE_CONFIG_AUDIT": "off"}))
    assert off.scanner.live_audit is None
    result = off.process([Message("peregrine.events.k8s_audit", 0, 3, b"shop", events_file(tmp_path).read_bytes())], None)
    assert [a.rule for _, a in result.alerts] == ["Privileged pod created"]

    config = tmp_path / "polaris.yaml"
    config.write_text("checks:\n  runAsPrivileged: ignore\n")
    quiet = build_processor(PipelineSettings.from_env(ENV | {"PEREGRINE_AUDIT_CONFIG": str(config)}))
    assert [c.id for c in quiet.scanner.live_audit.config.active()] == []
    with pytest.raises(AuditError, match="cannot read config"):
        build_processor(PipelineSettings.from_env(ENV | {"PEREGRINE_AUDIT_CONFIG": str(tmp_path / "missing.yaml")}))
    with pytest.raises(ConfigError, match="PEREGRINE_CONFIG_AUDIT"):
        PipelineSettings.from_env(ENV | {"PEREGRINE_CONFIG_AUDIT": "maybe"})
