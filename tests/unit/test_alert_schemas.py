"""Every kind of alert a SIEM reads, as the worker writes it, against its published schema:
Falco's JSON (schemas/alert.schema.json) and the OCSF Detection Finding
(schemas/ocsf-detection-finding.schema.json), for syscall, K8s audit and CloudTrail rules,
correlations (corr.* fields) and the live audit's Polaris checks, over the repository's event files."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from pipeline.alerts import falco_json
from pipeline.alerts.ocsf import ocsf_json
from pipeline.audit.live import LiveAudit
from pipeline.cli.rules import _rules_files
from pipeline.correlation.parse import CorrelationLoader
from pipeline.rules.loader import RulesLoader
from pipeline.scan import Scanner, scan_inputs

ROOT = Path(__file__).resolve().parents[2]
EVENT_FILES = sorted(
    [*(ROOT / "tests" / "data" / "events").glob("*.positive.jsonl"), *(ROOT / "tests" / "data" / "correlation").glob("*.jsonl"),
     *(ROOT / "deploy" / "atelier").glob("*/events.jsonl")])


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((ROOT / "schemas" / name).read_text()), format_checker=FormatChecker())


@pytest.fixture(scope="module")
def alerts() -> list:
    files = _rules_files([str(ROOT / "rules")])
    loader, correlations = RulesLoader(), CorrelationLoader()
    for path in files:
        loader.add_file(path)
        correlations.add_file(path)
    ruleset = loader.load()
    found: list = []
    for path in EVENT_FILES:  # a scanner a file, as `peregrine scan` on each: correlations do not span files
        scanner = Scanner(ruleset, hostname="node-1", correlations=correlations.load(ruleset),
                          live_audit=LiveAudit.from_config_file(None))
        scan_inputs(scanner, [str(path)], found.append, lambda where, message: pytest.fail(f"{where}: {message}"))
    return found


def kinds(alert) -> set[str]:
    fields = alert.output_fields
    return {alert.source} | {kind for kind, key in (("correlation", "corr.type"), ("polaris", "polaris.check")) if key in fields}


def test_the_event_files_give_every_kind_of_alert(alerts):
    assert set().union(*map(kinds, alerts)) == {"syscall", "k8s_audit", "aws_cloudtrail", "correlation", "polaris"}


def test_every_falco_json_alert_fits_the_alert_schema(alerts):
    schema = validator("alert.schema.json")
    for alert in alerts:
        document = orjson.loads(falco_json(alert))
        errors = list(schema.iter_errors(document))
        assert not errors, f"{alert.rule} ({kinds(alert)}): {errors[0].message} at {list(errors[0].path)}"
        assert document["output"].endswith(f" {alert.priority.label} {alert.message}")
        assert document["output_fields"]["evt.time"] == alert.time_ns


def test_every_ocsf_finding_fits_the_ocsf_schema(alerts):
    schema = validator("ocsf-detection-finding.schema.json")
    for alert in alerts:
        finding = orjson.loads(ocsf_json(alert))
        errors = list(schema.iter_errors(finding))
        assert not errors, f"{alert.rule} ({kinds(alert)}): {errors[0].message} at {list(errors[0].path)}"
        assert finding["type_uid"] == finding["class_uid"] * 100 + finding["activity_id"]
        assert finding["unmapped"] == orjson.loads(orjson.dumps(dict(alert.output_fields)))
