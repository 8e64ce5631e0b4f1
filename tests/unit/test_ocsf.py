"""Alerts as OCSF Detection Findings: Peregrine's own rules on their example events,
each finding checked against schemas/ocsf-detection-finding.schema.json and mapped field by field."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from pipeline.alerts.ocsf import SEVERITY, ocsf_finding, ocsf_json
from pipeline.cli.scan import default_rules_paths
from pipeline.rules.loader import RulesLoader
from pipeline.rules.model import PRIORITIES, Priority
from pipeline.scan import Scanner

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "data" / "events"
SCHEMA = json.loads((ROOT / "schemas" / "ocsf-detection-finding.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    loader = RulesLoader()
    for path in default_rules_paths():
        loader.add_file(path)
    return Scanner(loader.load(), hostname="node-1")


def alerts_of(scanner: Scanner, name: str) -> list:
    found = []
    for line in (EVENTS / name).read_text().splitlines():
        if line.strip():
            found += scanner.scan_event(orjson.loads(line))
    assert found, f"no alert from {name}"
    return found


def test_the_schema_is_valid_json_schema():
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("examples", ["syscall_interactive_shell.positive.jsonl", "syscall_exec_bit.positive.jsonl",
                                      "k8s_audit_privileged_pod.positive.jsonl", "cloudtrail_console_login.positive.jsonl"])
def test_findings_of_every_source_fit_the_schema(scanner, examples):
    for alert in alerts_of(scanner, examples):
        finding = orjson.loads(ocsf_json(alert))
        errors = sorted(VALIDATOR.iter_errors(finding), key=lambda e: list(e.path))
        assert not errors, f"{alert.rule}: {errors[0].message} at {list(errors[0].path)}"
        assert (finding["class_uid"], finding["category_uid"], finding["activity_id"], finding["type_uid"]) == (2004, 2, 1, 200401)
        assert finding["finding_info"]["uid"] == alert.uuid and finding["finding_info"]["title"] == alert.rule
        assert finding["finding_info"]["desc"] == alert.output
        assert finding["time"] == alert.time_ns // 1_000_000 == finding["finding_info"]["created_time"]
        assert finding["unmapped"] == orjson.loads(orjson.dumps(dict(alert.output_fields)))
        assert finding["metadata"]["version"] == "1.1.0" and finding["metadata"]["product"]["name"] == "Peregrine"
        assert finding["severity_id"] == SEVERITY[alert.priority]


def test_a_shell_in_a_container_maps_process_parent_and_container(scanner):
    alert = alerts_of(scanner, "syscall_interactive_shell.positive.jsonl")[0]
    fields = alert.output_fields
    finding = ocsf_finding(alert)
    evidence = finding["evidences"][0]
    assert fields["proc.name"] and fields["proc.cmdline"] and fields["proc.pname"] and fields["user.name"]  # what this rule prints
    assert evidence["process"]["name"] == fields["proc.name"]
    assert evidence["process"]["cmd_line"] == fields["proc.cmdline"]
    assert evidence["process"]["parent_process"]["name"] == fields["proc.pname"]
    assert evidence["process"]["user"]["name"] == fields["user.name"]
    pod = next(r for r in finding["resources"] if r["type"] == "kubernetes pod")
    assert pod == {"type": "kubernetes pod", "name": fields["k8s.pod.name"], "namespace": fields["k8s.ns.name"]}
    assert {"type": "container", "uid": fields["container.id"]}.items() <= finding["resources"][0].items()
    assert finding["finding_info"]["types"] == list(alert.tags)


def test_evidences_hold_only_what_ocsf_1_1_0_evidence_artifacts_define(scanner):
    """OCSF 1.1.0's Evidence Artifacts have actor, api, connection_info, data, dst_endpoint, file,
    process, query and src_endpoint: no container (it was written there)."""
    defined = {"actor", "api", "connection_info", "data", "dst_endpoint", "file", "process", "query", "src_endpoint"}
    alert = alerts_of(scanner, "syscall_interactive_shell.positive.jsonl")[0]
    assert alert.output_fields["container.id"] and alert.output_fields["container.image.repository"]
    for fields in (alert.output_fields, {**alert.output_fields, "container.image.id": "sha256:77af4d6b9913"}):
        finding = ocsf_finding(replace(alert, output_fields=fields))
        assert finding["evidences"] and all(evidence.keys() <= defined for evidence in finding["evidences"])
    bare = ocsf_finding(replace(alert, output_fields={"evt.time": alert.time_ns, "container.id": "9f3c2a7b1e4d"}))
    assert "evidences" not in bare and bare["resources"] == [{"type": "container", "uid": "9f3c2a7b1e4d"}]


def test_the_process_carries_its_container_through_the_container_profile_only_when_whole(scanner):
    """OCSF's container needs its uid and an image with its uid (container.image.id): without
    the image id the container is a resource only, never an object missing what OCSF requires."""
    alert = alerts_of(scanner, "syscall_interactive_shell.positive.jsonl")[0]
    fields = alert.output_fields
    without_image_id = ocsf_finding(alert)
    assert "container" not in without_image_id["evidences"][0]["process"]
    assert "profiles" not in without_image_id["metadata"]
    whole = {**fields, "container.image.id": "sha256:77af4d6b9913", "container.name": "web"}
    finding = ocsf_finding(replace(alert, output_fields=whole))
    assert finding["evidences"][0]["process"]["container"] == {
        "uid": fields["container.id"], "name": "web",
        "image": {"uid": "sha256:77af4d6b9913", "name": fields["container.image.repository"]}}
    assert finding["metadata"]["profiles"] == ["container"]
    assert {"type": "container", "uid": fields["container.id"], "name": "web"} in finding["resources"]
    assert not list(VALIDATOR.iter_errors(orjson.loads(orjson.dumps(finding))))


def test_the_schema_refuses_a_container_ocsf_1_1_0_does_not_take(scanner):
    alert = alerts_of(scanner, "syscall_interactive_shell.positive.jsonl")[0]
    finding = orjson.loads(ocsf_json(alert))
    in_evidence = {**finding, "evidences": [{**finding["evidences"][0], "container": {"uid": "9f3c2a7b1e4d"}}]}
    no_image_id = {**finding, "metadata": {**finding["metadata"], "profiles": ["container"]},
                   "evidences": [{"process": {**finding["evidences"][0]["process"],
                                              "container": {"uid": "9f3c2a7b1e4d", "image": {"name": "web"}}}}]}
    no_profile = {**finding, "evidences": [{"process": {**finding["evidences"][0]["process"],
                                                        "container": {"uid": "9f3c2a7b1e4d", "image": {"uid": "77af4d6b9913"}}}}]}
    for wrong in (in_evidence, no_image_id, no_profile):
        assert list(VALIDATOR.iter_errors(wrong))


def test_an_audit_alert_has_the_user_as_actor_and_the_target_as_resource(scanner):
    alert = alerts_of(scanner, "k8s_audit_privileged_pod.positive.jsonl")[0]
    finding = ocsf_finding(alert)
    fields = alert.output_fields
    assert "process" not in finding["evidences"][0]
    assert finding["evidences"][0]["actor"]["user"]["name"] == fields["ka.user.name"]
    target = [r for r in finding["resources"] if r["type"].startswith("kubernetes")]
    assert target and target[0]["name"] == fields["ka.target.name"]


def test_severity_follows_falco_priority_most_severe_highest():
    ids = [SEVERITY[p] for p in PRIORITIES]
    assert ids == sorted(ids, reverse=True)
    assert (SEVERITY[Priority.EMERGENCY], SEVERITY[Priority.CRITICAL], SEVERITY[Priority.WARNING], SEVERITY[Priority.DEBUG]) == (6, 5, 3, 1)


def test_host_events_and_missing_fields_leave_out_what_is_not_there(scanner):
    alert = alerts_of(scanner, "syscall_interactive_shell.positive.jsonl")[0]
    bare = replace(alert, output_fields={"evt.time": alert.time_ns, "container.id": "host", "proc.name": None}, tags=())
    finding = ocsf_finding(bare)
    assert "resources" not in finding and "evidences" not in finding
    assert finding["finding_info"]["types"] == [alert.source]
    assert not list(VALIDATOR.iter_errors(orjson.loads(orjson.dumps(finding))))
