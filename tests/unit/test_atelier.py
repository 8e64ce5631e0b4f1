"""The atelier (deploy/atelier): every attack's events give exactly the alerts
its catalog entry expects under `peregrine scan`, every rule and correlation Peregrine
ships has an attack that proves it, and the scripts and manifests hold together."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml

from pipeline.cli.main import main
from pipeline.fields.schema import validate_event

ROOT = Path(__file__).resolve().parents[2]
ATELIER = ROOT / "deploy" / "atelier"
RULES_DIR = ROOT / "rules"
CATALOG = yaml.safe_load((ATELIER / "catalog.yaml").read_text())["entries"]
UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml",
                  "k8s_audit_rules.yaml", "aws_cloudtrail_rules.yaml")


def scan_counts(capsys, *args: str) -> Counter:
    code = main(["scan", "--json", "--quiet", "--matching", "all", "--hostname", "atelier", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return Counter(orjson.loads(line)["rule"] for line in captured.out.splitlines())


def read_events(name: str) -> list[dict]:
    return [orjson.loads(line) for line in (ATELIER / CATALOG[name]["events"]).read_text().splitlines() if line.strip()]


def source_of(event: dict) -> str:
    if "evt.type" in event:
        return "syscall"
    if event.get("apiVersion") == "audit.k8s.io/v1":
        return "k8s_audit"
    assert "eventSource" in event, event
    return "aws_cloudtrail"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_scan_of_the_attack_events_gives_exactly_the_expected_alerts(capsys, name):
    counts = scan_counts(capsys, "--rules", str(RULES_DIR), str(ATELIER / CATALOG[name]["events"]))
    assert counts == Counter(CATALOG[name]["expect"])


def shipped_detections() -> set[str]:
    """The names of every rule and correlation in rules/*.yaml (enabled or not)."""
    names: set[str] = set()
    for path in sorted(RULES_DIR.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            for kind in ("rule", "correlation"):
                if isinstance(item, dict) and kind in item:
                    names.add(item[kind])
    return names


def test_every_rule_and_correlation_has_an_attack_that_fires_it():
    proven = {rule for entry in CATALOG.values() for rule, count in entry["expect"].items() if count >= 1}
    shipped = shipped_detections()
    assert len(shipped) >= 12  # 8 rules and 4 correlations when this test was written
    assert sorted(shipped - proven) == []
    polaris = {rule for rule in proven if rule.startswith("Polaris ")}
    assert polaris, "no entry proves the live Polaris audit"
    assert sorted(proven - shipped - polaris) == []  # no entry expects a rule that does not exist


def test_catalog_and_folders_agree():
    folders = {p.parent.name for p in ATELIER.glob("*/attack.sh")}
    assert folders == set(CATALOG)
    for name, entry in CATALOG.items():
        assert entry["attack"] == f"{name}/attack.sh" and entry["events"] == f"{name}/events.jsonl"
        assert entry["runs"] in ("container", "workstation")
        if "manifest" in entry:
            assert (ATELIER / entry["manifest"]).is_file()


def test_every_attack_script_is_valid_posix_sh():
    scripts = sorted(ATELIER.glob("*/attack.sh")) + [ATELIER / "image" / "java", ATELIER / "image" / "kubectl"]
    assert len(scripts) == len(CATALOG) + 2
    for script in scripts:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
        assert script.read_text().startswith("#!/bin/sh\n")


def test_in_container_scripts_talk_only_to_loopback_or_the_target_they_are_given():
    """No host names or addresses other than loopback and the atelier's own target."""
    allowed_hosts = {"127.0.0.1", "127.0.0.$i", "$target", "atelier-target"}
    in_container = [ATELIER / e["attack"] for e in CATALOG.values() if e["runs"] == "container"]
    assert len(in_container) >= 5
    for script in in_container + [ATELIER / "image" / "java"]:
        for host in re.findall(r"(?:https?|ldap)://([^/:\"' ]+)", script.read_text()):
            assert host in allowed_hosts, f"{script} reaches {host}"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_events_are_what_the_collectors_send(name):
    """Each event passes its source's schema; syscall events are in time order, and a
    process's parent, as the event gives it, is the process that pid last exec'd."""
    events = read_events(name)
    assert events
    names: dict[int, str] = {}
    last = 0
    for event in events:
        source = source_of(event)
        validate_event(event, source)
        if source != "syscall":
            continue
        assert event["evt.time"] >= last
        last = event["evt.time"]
        assert event["container.id"] != "host" and re.fullmatch(r"[0-9a-f]{12}", event["container.id"])
        if event["proc.ppid"] in names:
            assert event["proc.pname"] == names[event["proc.ppid"]], event
        if event["evt.type"] == "execve":
            names[event["proc.pid"]] = event["proc.name"]
            assert event["proc.cmdline"].split(" ")[0] == event["proc.name"]
        else:
            assert names.get(event["proc.pid"], event["proc.name"]) == event["proc.name"], event


def test_the_image_bundles_every_attack_and_the_jobs_run_them():
    dockerfile = (ATELIER / "image" / "Dockerfile").read_text()
    for name in CATALOG:
        assert f"COPY {name}/ /opt/atelier/{name}/" in dockerfile
    assert "FROM " in dockerfile and "ADD http" not in dockerfile and "curl http" not in dockerfile
    jobs = [d for d in yaml.safe_load_all((ATELIER / "k8s" / "jobs.yaml").read_text()) if d]
    in_container = sorted(name for name, entry in CATALOG.items() if entry["runs"] == "container")
    run = sorted(job["spec"]["template"]["spec"]["containers"][0]["command"][1].split("/")[3] for job in jobs)
    assert run == in_container
    for manifest in (ATELIER / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc and doc["kind"] != "Namespace" and "namespace" in doc["metadata"]:
                assert doc["metadata"]["namespace"] == "peregrine-atelier", manifest


def test_upstream_falco_rules_that_cover_the_attacks_fire(capsys, upstream_rules_dir):
    rules = [arg for f in UPSTREAM_FILES for arg in ("--rules", str(upstream_rules_dir / f))]
    checked = 0
    for name, entry in sorted(CATALOG.items()):
        if not entry.get("upstream"):
            continue
        counts = scan_counts(capsys, "--no-config-audit", *rules, str(ATELIER / entry["events"]))
        assert {rule: counts[rule] for rule in entry["upstream"]} == entry["upstream"], name
        checked += 1
    assert checked >= 5


def worker_alerts(events_path: Path, env: dict[str, str]) -> Counter:
    """The worker's batch processor (process tree, rules, correlations, live audit) over
    one batch holding the file's events, one Kafka message each, in order."""
    from pipeline.cli.replay import _source, key_of, load_events
    from pipeline.stream.batch import Message
    from pipeline.stream.delivery import build_processor
    from pipeline.stream.settings import PipelineSettings

    settings = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "1", **env})
    processor = build_processor(settings)
    topics = {"syscall": settings.syscall_topic, "k8s_audit": settings.k8s_audit_topic, "aws_cloudtrail": settings.cloudtrail_topic}
    messages = []
    for offset, (event, hint) in enumerate(load_events([str(events_path)])):
        source = _source(event, hint)
        messages.append(Message(topics[source], 0, offset, key_of(event, source), orjson.dumps(event)))
    result = processor.process(messages, None)
    assert result.dead_letters == []
    return Counter(alert.rule for _, alert in result.alerts)


def test_the_demo_gives_its_alerts_in_the_worker_with_the_demos_settings():
    """As `peregrine demo` runs it: default rules and correlations, first matching rule,
    the live audit; curl's java parent comes from the process tree."""
    demo = yaml.safe_load((ATELIER / "catalog.yaml").read_text())["demo"]
    assert worker_alerts(ATELIER / demo["events"], {}) == Counter(demo["expect"])


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_the_worker_gives_what_the_scan_gives(name):
    rules = os.pathsep.join(str(p) for p in sorted(RULES_DIR.glob("*.yaml")))
    counts = worker_alerts(ATELIER / CATALOG[name]["events"], {"PEREGRINE_RULES": rules, "PEREGRINE_RULE_MATCHING": "all"})
    assert counts == Counter(CATALOG[name]["expect"])


def test_the_insecure_atelier_manifests_stay_out_of_peregrines_own_deploy_manifests():
    """`peregrine audit deploy/k8s` must score 100: none of the atelier's objects may be there."""
    own = sorted((ROOT / "deploy" / "k8s").rglob("*.yaml"))
    assert own
    for path in own:
        assert "peregrine-atelier" not in path.read_text(), path
    atelier = [p for p in ATELIER.rglob("*.yaml") if p.name != "catalog.yaml"]
    assert len(atelier) >= 7 and all(ROOT / "deploy" / "k8s" not in p.parents for p in atelier)
