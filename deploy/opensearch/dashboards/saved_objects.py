"""Peregrine's OpenSearch Dashboards objects: an index pattern, six panels, a dashboard.

The committed ``peregrine-dashboard.ndjson`` is this script's output
(``python deploy/opensearch/dashboards/saved_objects.py > .../peregrine-dashboard.ndjson``);
a unit test keeps the two equal and checks that every field a panel
aggregates is a keyword or date of the alert index template. Import it in
Dashboards (Stack Management, Saved objects, Import) or with
``curl -X POST -H 'osd-xsrf: true' -F file=@peregrine-dashboard.ndjson
'http://127.0.0.1:5601/api/saved_objects/_import?overwrite=true'``
(docker-compose's ``dashboards-init`` service does that).
"""

from __future__ import annotations

import json
import sys
from typing import Any

INDEX_PATTERN_ID = "peregrine-alerts"
INDEX_PATTERN = "peregrine-alerts-*"
SEARCH_SOURCE_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _search_source(query: str = "") -> dict[str, str]:
    return {"searchSourceJSON": _compact({"indexRefName": SEARCH_SOURCE_REF, "filter": [],
                                          "query": {"language": "kuery", "query": query}})}


def _terms(agg_id: str, field: str, size: int, schema: str) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1",
                       "missingBucket": False, "otherBucket": False}}


COUNT = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _visualization(vis_id: str, title: str, vis_type: str, aggs: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": vis_id,
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _compact({"title": title, "type": vis_type, "aggs": aggs, "params": params}),
            "kibanaSavedObjectMeta": _search_source(),
        },
        "references": [{"name": SEARCH_SOURCE_REF, "type": "index-pattern", "id": INDEX_PATTERN_ID}],
    }


def _table(vis_id: str, title: str, field: str, size: int = 15) -> dict[str, Any]:
    return _visualization(vis_id, title, "table", [COUNT, _terms("2", field, size, "bucket")],
                          {"perPage": size, "showPartialRows": False, "showMetricsAtAllLevels": False,
                           "showTotal": False, "totalFunc": "sum", "percentageCol": ""})


def saved_objects() -> list[dict[str, Any]]:
    index_pattern = {
        "id": INDEX_PATTERN_ID,
        "type": "index-pattern",
        "attributes": {"title": INDEX_PATTERN, "timeFieldName": "time"},
        "references": [],
    }
    over_time = _visualization(
        "peregrine-alerts-over-time", "Peregrine: alerts over time by priority", "histogram",
        [COUNT,
         {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
          "params": {"field": "time", "interval": "auto", "min_doc_count": 1, "extended_bounds": {}}},
         _terms("3", "priority", 8, "group")],
        {"type": "histogram", "addLegend": True, "addTooltip": True, "legendPosition": "right", "times": [],
         "seriesParams": [{"data": {"id": "1", "label": "Alerts"}, "mode": "stacked", "show": True,
                           "type": "histogram", "valueAxis": "ValueAxis-1"}]},
    )
    by_priority = _visualization(
        "peregrine-alerts-by-priority", "Peregrine: alerts by priority", "pie",
        [COUNT, _terms("2", "priority", 8, "segment")],
        {"type": "pie", "addLegend": True, "addTooltip": True, "isDonut": True, "legendPosition": "right",
         "labels": {"show": True, "values": True, "last_level": True, "truncate": 100}},
    )
    panels = [
        over_time,
        by_priority,
        _table("peregrine-top-rules", "Peregrine: top rules", "rule", 20),
        _table("peregrine-top-namespaces", "Peregrine: top namespaces", "context.namespace"),
        _table("peregrine-top-containers", "Peregrine: top containers", "context.container_id"),
        _table("peregrine-top-users", "Peregrine: top users", "context.user"),
    ]
    latest = {
        "id": "peregrine-latest-alerts",
        "type": "search",
        "attributes": {
            "title": "Peregrine: latest alerts",
            "description": "",
            "columns": ["priority", "rule", "source", "context.namespace", "context.container_id", "output"],
            "sort": [["time", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": _search_source(),
        },
        "references": [{"name": SEARCH_SOURCE_REF, "type": "index-pattern", "id": INDEX_PATTERN_ID}],
    }
    layout = [(0, 0, 48, 12), (0, 12, 16, 15), (16, 12, 32, 15), (0, 27, 16, 15), (16, 27, 16, 15), (32, 27, 16, 15), (0, 42, 48, 20)]
    members = panels + [latest]
    panels_json = [
        {"panelIndex": str(i + 1), "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i + 1)},
         "embeddableConfig": {}, "version": "2.19.0", "panelRefName": f"panel_{i}"}
        for i, (x, y, w, h) in enumerate(layout)
    ]
    dashboard = {
        "id": "peregrine-overview",
        "type": "dashboard",
        "attributes": {
            "title": "Peregrine: threat overview",
            "description": "Alerts from Peregrine's rules, correlations and live configuration audit.",
            "panelsJSON": _compact(panels_json),
            "optionsJSON": _compact({"hidePanelTitles": False, "useMargins": True}),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 30000},
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _compact({"filter": [], "query": {"language": "kuery", "query": ""}})},
        },
        "references": [{"name": f"panel_{i}", "type": member["type"], "id": member["id"]} for i, member in enumerate(members)],
    }
    return [index_pattern, *members, dashboard]


def ndjson() -> str:
    return "".join(json.dumps(item, sort_keys=True) + "\n" for item in saved_objects())


if __name__ == "__main__":
    sys.stdout.write(ndjson())
