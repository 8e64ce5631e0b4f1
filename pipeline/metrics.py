"""Prometheus metrics of a worker (served by the Faust web server at ``/metrics``) and of the audit webhook receiver (its own ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter("peregrine_messages_total", "Kafka messages consumed", ["topic"], registry=REGISTRY)
EVENTS = Counter("peregrine_events_total", "Events decoded from messages", registry=REGISTRY)
ALERTS = Counter("peregrine_alerts_total", "Alerts produced", ["priority"], registry=REGISTRY)
DEAD_LETTERS = Counter("peregrine_dead_letters_total", "Messages or events set aside", ["reason"], registry=REGISTRY)
ENRICHED = Counter("peregrine_enriched_events_total", "Events given parent fields from the process tree", registry=REGISTRY)
FORWARDED = Counter("peregrine_repartitioned_events_total", "Syscall events forwarded to the repartition topic", registry=REGISTRY)
REGROUPED = Counter("peregrine_regrouped_events_total",
                    "Events sent to the regroup topic for a correlation grouped by another field than their topic's key",
                    registry=REGISTRY)
OPENSEARCH_RETRIES = Counter("peregrine_opensearch_retries_total", "Bulk writes retried while OpenSearch was unavailable", registry=REGISTRY)
ALERTS_SHORTENED = Counter("peregrine_alerts_shortened_total",
                           "Alerts whose long values were cut to fit a Kafka record (pipeline/alerts/bounds.py)", registry=REGISTRY)
CORRELATION_GROUPS_DROPPED = Counter("peregrine_correlation_groups_oversized_total",
                                     "Correlation groups dropped: their state outgrew one changelog record", registry=REGISTRY)
STORED = Counter("peregrine_alerts_stored_total", "Alerts accepted by OpenSearch (409 duplicates included)", registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "peregrine_batch_seconds", "Time to process, deliver and store one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY,
)
BATCH_MESSAGES = Histogram("peregrine_batch_messages", "Messages per batch", buckets=(1, 10, 100, 500, 1000, 5000), registry=REGISTRY)
CONTAINERS = Gauge("peregrine_tracked_containers", "Containers with process state in this worker", registry=REGISTRY)
LIVE_AUDIT = Counter(
    "peregrine_live_audit_events_total",
    "K8s audit create/update/patch events the live Polaris audit looked at, by outcome", ["outcome"], registry=REGISTRY,
)
CONTAINERS_EVICTED = Counter("peregrine_containers_evicted_total", "Containers dropped from the process state (idle or over the limit)",
                             registry=REGISTRY)

# The audit webhook receiver (`peregrine webhook`).
WEBHOOK_REQUESTS = Counter("peregrine_webhook_requests_total", "Audit webhook requests answered", ["code"], registry=REGISTRY)
WEBHOOK_EVENTS = Counter("peregrine_webhook_events_total", "Audit events acked by Kafka", registry=REGISTRY)
WEBHOOK_OVERSIZED = Counter(
    "peregrine_webhook_oversized_events_total", "Audit events too large for one Kafka message",
    ["outcome"], registry=REGISTRY,  # trimmed (request/response objects removed) or dropped
)
WEBHOOK_STALLED_HEADS = Counter(
    "peregrine_webhook_stalled_heads_total",
    "Connections closed at the read timeout with a request head begun and not finished (no answer sent)", registry=REGISTRY,
)
WEBHOOK_CONNECTIONS = Gauge("peregrine_webhook_open_connections", "Connections the audit webhook holds open", registry=REGISTRY)
WEBHOOK_MAX_CONNECTIONS = Gauge("peregrine_webhook_max_connections", "The audit webhook's connection cap", registry=REGISTRY)
WEBHOOK_CONNECTIONS_REFUSED = Counter(
    "peregrine_webhook_connections_refused_total",
    "Connections reset as soon as accepted: the audit webhook held its cap of open connections", registry=REGISTRY,
)

for reason in ("undecodable", "oversized", "schema", "evaluation_error", "unknown_correlation", "index_rejected"):
    DEAD_LETTERS.labels(reason)
for outcome in ("audited", "unchanged", "no_object", "rejected", "dry_run", "owned", "error"):
    LIVE_AUDIT.labels(outcome)
for outcome in ("trimmed", "dropped"):
    WEBHOOK_OVERSIZED.labels(outcome)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
