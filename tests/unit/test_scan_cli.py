"""`peregrine scan` end to end through pipeline.cli.main.main, on the example events."""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "data" / "events"
POSITIVES = sorted(str(p) for p in EVENTS.glob("*.positive.jsonl"))
NEGATIVES = sorted(str(p) for p in EVENTS.glob("*.negative.jsonl"))
SHELL = str(EVENTS / "syscall_interactive_shell.positive.jsonl")

EXPECTED = Counter({
    "AWS console login without MFA": 2,
    "Container drift by exec bit": 3,
    "Interactive shell in container": 2,
    "Java process spawned shell or downloader": 2,
    "Java process wrote class file": 2,
    "Kubernetes client run in container": 2,
    "Outbound LDAP connection from Java process": 2,
    "Privileged pod created": 2,
    "RBAC self-escalation": 3,  # a correlation: scan loads rules/peregrine_correlations.yaml as a worker does
})


def run(capsys, *args: str) -> tuple[int, list[dict], str]:
    """Rules only: the live Polaris audit of K8s objects has its own tests (test_live_audit_scan.py)."""
    code = main(["scan", "--json", "--hostname", "test-host", "--no-config-audit", *args])
    captured = capsys.readouterr()
    return code, [orjson.loads(line) for line in captured.out.splitlines()], captured.err


def by_rule(alerts: list[dict]) -> Counter:
    return Counter(alert["rule"] for alert in alerts)


def test_positives_and_negatives_count_per_rule(capsys):
    code, alerts, err = run(capsys, *POSITIVES, *NEGATIVES)
    assert code == 0
    assert by_rule(alerts) == EXPECTED
    assert "20 alerts, 0 bad lines" in err
    assert all(alert["hostname"] == "test-host" and alert["uuid"] for alert in alerts)


def test_json_alert_fields(capsys):
    code, alerts, _ = run(capsys, SHELL)
    assert code == 0
    first = alerts[0]
    assert first["time"] == "2024-05-01T12:00:00.124456789Z"
    assert first["priority"] == "Notice" and first["source"] == "syscall"
    assert first["output"].startswith("12:00:00.124456789: Notice Interactive shell started in container (user=root process=bash command=bash")
    assert first["output_fields"]["proc.tty"] == 34816
    assert first["output_fields"]["k8s.pod.name"] == "web-7c9d5f-x2k4p"
    assert first["tags"] == ["T1059", "container", "mitre_execution", "shell"]


def test_plain_output_is_falco_text_lines(capsys):
    assert main(["scan", "--quiet", SHELL]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("12:00:00.124456789: Notice Interactive shell started")
    assert captured.err == ""


def _two_rule_event(tmp_path: Path) -> str:
    """A Java process starting an interactive sh: both the shell and the Log4Shell rule match."""
    event = orjson.loads((EVENTS / "syscall_java_shell.positive.jsonl").read_bytes().splitlines()[0])
    event["proc.tty"] = 34816
    path = tmp_path / "two.jsonl"
    path.write_bytes(orjson.dumps(event) + b"\n")
    return str(path)


def test_matching_first_stops_at_the_first_rule_in_file_order(capsys, tmp_path):
    path = _two_rule_event(tmp_path)
    _, alerts, _ = run(capsys, "--matching", "first", path)
    assert [a["rule"] for a in alerts] == ["Interactive shell in container"]
    _, alerts, _ = run(capsys, "--matching", "all", path)
    assert [a["rule"] for a in alerts] == ["Interactive shell in container", "Java process spawned shell or downloader"]
    assert alerts[0]["uuid"] != alerts[1]["uuid"]


def test_min_priority_keeps_only_severe_rules(capsys):
    code, alerts, _ = run(capsys, "--min-priority", "error", *POSITIVES)
    assert code == 0
    assert by_rule(alerts) == Counter({"Container drift by exec bit": 3, "Java process spawned shell or downloader": 2,
                                       "AWS console login without MFA": 2, "RBAC self-escalation": 3})


def test_stdin_input(capsys, monkeypatch):
    data = Path(SHELL).read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, alerts, err = run(capsys, "-")
    assert code == 0 and len(alerts) == 2
    assert "scanned 2 events" in err


def test_bad_line_in_the_middle_is_reported_and_skipped(capsys, tmp_path):
    good = Path(SHELL).read_bytes().splitlines()
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good[0], b'{"evt.type": "execve", broken', b"42", good[1]]) + b"\n")
    code, alerts, err = run(capsys, str(path))
    assert code == 1
    assert len(alerts) == 2
    assert f"warning: {path}:2: malformed JSON" in err
    assert f"warning: {path}:3: not a JSON object" in err
    assert "2 bad lines" in err


def test_eventlist_and_ndjson_of_eventlists(capsys, tmp_path):
    eventlist = EVENTS / "k8s_audit_eventlist.json"
    code, alerts, _ = run(capsys, str(eventlist))
    assert code == 0
    assert by_rule(alerts) == Counter({"Privileged pod created": 2})
    assert {a["source"] for a in alerts} == {"k8s_audit"}
    assert alerts[0]["time"] == "2024-05-01T12:00:01.123456000Z"
    compact = orjson.loads(eventlist.read_bytes())
    ndjson = tmp_path / "lists.jsonl"
    ndjson.write_bytes(orjson.dumps(compact) + b"\n" + orjson.dumps(compact) + b"\n")
    code, alerts, _ = run(capsys, str(ndjson))
    assert code == 0 and len(alerts) == 4


def test_json_array_input(capsys, tmp_path):
    events = [orjson.loads(line) for line in Path(SHELL).read_bytes().splitlines()]
    path = tmp_path / "array.json"
    path.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    code, alerts, _ = run(capsys, str(path))
    assert code == 0 and len(alerts) == 2


def test_forced_source(capsys):
    code, alerts, _ = run(capsys, "--source", "syscall", SHELL)
    assert code == 0 and len(alerts) == 2


def test_rules_error_shows_position_and_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad_rules.yaml"
    bad.write_text("- rule: Broken\n  desc: d\n  condition: proc.name = bash and (\n  output: x\n  priority: WARNING\n")
    code = main(["scan", "--rules", str(bad), SHELL])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:3:" in err


def test_missing_input_exits_2(capsys, tmp_path):
    assert main(["scan", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read input" in capsys.readouterr().err


def test_rules_from_environment(capsys, monkeypatch):
    monkeypatch.setenv("PEREGRINE_RULES", str(ROOT / "rules" / "peregrine_k8s_audit_rules.yaml"))
    code, alerts, _ = run(capsys, *POSITIVES)
    assert code == 0
    assert by_rule(alerts) == Counter({"Privileged pod created": 2})


def test_upstream_falco_rules_fire_on_a_terminal_shell(capsys, upstream_rules_dir):
    code, alerts, _ = run(capsys, "--rules", str(upstream_rules_dir / "falco_rules.yaml"), SHELL)
    assert code == 0
    assert [a["rule"] for a in alerts] == ["Terminal shell in container"] * 2


def test_matching_must_be_first_or_all(capsys):
    assert main(["scan", "--matching", "every", *POSITIVES]) == 2
    assert "--matching must be first or all, got 'every'" in capsys.readouterr().err


def test_a_closed_stdout_stops_the_scan_quietly(tmp_path):
    """`peregrine scan ... | head -1`: no 'cannot read input' message when the reader goes away."""
    import subprocess
    import sys

    many = tmp_path / "many.jsonl"
    many.write_bytes(b"".join((EVENTS / "syscall_interactive_shell.positive.jsonl").read_bytes() for _ in range(3000)))
    scan = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", "scan", "-q", str(many)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert scan.stdout.readline().strip()  # one alert read, then the reader closes the pipe
    scan.stdout.close()
    err = scan.stderr.read().decode()
    assert scan.wait(timeout=120) == 141
    assert err == ""
