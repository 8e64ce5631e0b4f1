"""A SOC report over the stored alerts: one aggregation query, one frozen result.

Counts per priority, source and hour, and the top rules, namespaces,
containers, images and users, over a time range of alert time. The fields
aggregated are keywords of the index template (``rule``, ``priority``,
``source``, ``context.*``), so the report runs on any OpenSearch 2.x, the
integ-test distribution included (no scripts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.sinks.daily_indices import only_indices

#: (report section, document field) for the top-N sections.
TOP_FIELDS: tuple[tuple[str, str], ...] = (
    ("rules", "rule"),
    ("namespaces", "context.namespace"),
    ("containers", "context.container_id"),
    ("images", "context.image"),
    ("users", "context.user"),
)
PRIORITY_ORDER = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")


@dataclass(frozen=True, slots=True)
class AlertReport:
    start_ms: int
    end_ms: int
    total: int
    by_priority: tuple[tuple[str, int], ...]
    by_source: tuple[tuple[str, int], ...]
    top: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    per_hour: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "total": self.total,
            "by_priority": dict(self.by_priority),
            "by_source": dict(self.by_source),
            "top": {section: dict(rows) for section, rows in self.top},
            "per_hour": dict(self.per_hour),
        }


def report_query(start_ms: int, end_ms: int, top: int, indices: list[str] | None = None) -> dict[str, Any]:
    """The search body: no hits, only aggregations, over ``[start_ms, end_ms)``, of the
    documents of ``indices`` alone when given (pipeline/sinks/daily_indices.py)."""
    aggs: dict[str, Any] = {
        "priority": {"terms": {"field": "priority", "size": len(PRIORITY_ORDER)}},
        "source": {"terms": {"field": "source", "size": 10}},
        "per_hour": {"date_histogram": {"field": "time", "fixed_interval": "1h", "min_doc_count": 1,
                                        "format": "yyyy-MM-dd'T'HH:mm'Z'"}},
    }
    for section, field in TOP_FIELDS:
        aggs[section] = {"terms": {"field": field, "size": top}}
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [{"range": {"time": {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}},
                                      *([only_indices(indices)] if indices is not None else [])]}},
        "aggs": aggs,
    }


def _buckets(aggregation: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple((str(b.get("key_as_string", b["key"])), int(b["doc_count"])) for b in aggregation.get("buckets", ()))


def parse_report(response: dict[str, Any], start_ms: int, end_ms: int) -> AlertReport:
    aggs = response.get("aggregations", {})
    total = response["hits"]["total"]
    by_priority = sorted(_buckets(aggs.get("priority", {})),
                         key=lambda kv: PRIORITY_ORDER.index(kv[0]) if kv[0] in PRIORITY_ORDER else len(PRIORITY_ORDER))
    return AlertReport(
        start_ms=start_ms,
        end_ms=end_ms,
        total=int(total["value"] if isinstance(total, dict) else total),
        by_priority=tuple(by_priority),
        by_source=_buckets(aggs.get("source", {})),
        top=tuple((section, _buckets(aggs.get(section, {}))) for section, _ in TOP_FIELDS),
        per_hour=_buckets(aggs.get("per_hour", {})),
    )


async def alert_report(client: Any, index_pattern: str, start_ms: int, end_ms: int, top: int = 10,
                       indices: list[str] | None = None) -> AlertReport:
    """Run the report on ``index_pattern`` (e.g. ``peregrine-alerts-*``), on the documents of
    ``indices`` alone when given (``peregrine alerts report``: the prefix's daily indices)."""
    response = await client.search(index=index_pattern, body=report_query(start_ms, end_ms, top, indices),
                                   ignore_unavailable=True, allow_no_indices=True,
                                   allow_partial_search_results=False)  # a shard that fails is an error, not a lower count
    return parse_report(response, start_ms, end_ms)
