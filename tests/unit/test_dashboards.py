"""The Dashboards saved objects: generated, consistent, and aggregating only fields the template makes aggregatable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "opensearch" / "dashboards"
TEMPLATE = ROOT / "deploy" / "opensearch" / "alerts-template.json"


def _generator():
    spec = importlib.util.spec_from_file_location("saved_objects", DASHBOARDS / "saved_objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _objects() -> list[dict]:
    return [json.loads(line) for line in (DASHBOARDS / "peregrine-dashboard.ndjson").read_text().splitlines()]


def _aggregatable_fields() -> dict[str, str]:
    properties = json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"]
    found: dict[str, str] = {}

    def walk(props: dict, prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            if spec.get("type") in ("keyword", "date", "date_nanos", "long"):
                found[prefix + name] = spec["type"]

    walk(properties, "")
    return found


def test_the_committed_file_is_the_generators_output():
    assert (DASHBOARDS / "peregrine-dashboard.ndjson").read_text() == _generator().ndjson()


def test_every_reference_resolves_and_ids_are_unique():
    objects = _objects()
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects)
    for item in objects:
        for ref in item["references"]:
            assert (ref["type"], ref["id"]) in ids, (item["id"], ref)
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == {r["name"] for r in dashboard["references"]}


def test_the_index_pattern_matches_the_template_and_its_time_field():
    template = json.loads(TEMPLATE.read_text())
    pattern = next(o for o in _objects() if o["type"] == "index-pattern")["attributes"]
    assert pattern["title"] in template["index_patterns"]
    assert _aggregatable_fields()[pattern["timeFieldName"]] == "date_nanos"


def test_panels_aggregate_only_keyword_and_date_fields_of_the_template():
    fields = _aggregatable_fields()
    used = set()
    for item in _objects():
        if item["type"] == "visualization":
            for agg in json.loads(item["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    used.add(agg["params"]["field"])
                    assert agg["params"]["field"] in fields, (item["id"], agg["params"]["field"])
        if item["type"] == "search":
            assert item["attributes"]["sort"][0][0] in fields
    assert {"time", "priority", "rule", "context.namespace", "context.container_id", "context.user"} <= used
