"""The regroup topic: correlations grouped by another field than their topic's key.

A correlation's groups must meet in one partition of the correlation table.
The input topics are keyed by ``container.id`` (syscall), the namespace
(K8s audit) and the account id (CloudTrail); a correlation whose ``by``
fields include that field has each group's events on one partition already.
Any other (``by: ka.user.name``: one user's requests come from every
namespace) is *regrouped*, as Kafka Streams repartitions before a groupBy:
the worker evaluates its rules where the event arrives, sends the event to
the regroup topic keyed by the correlation's group key, and evaluates the
correlation when it comes back on the group's own partition (the topic has
the table's partition count, so Faust gives partition p of both to one
worker). With one partition every group meets anyway: nothing is regrouped.

A message on the regroup topic is NDJSON, one envelope per line:
``{"source": ..., "correlations": [names], "event": {...}}``.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

# the field each input topic is keyed by (pipeline/ingest/keys.py, the webhook, replay)
TOPIC_KEY_FIELDS = {"syscall": "container.id", "k8s_audit": "ka.target.namespace", "aws_cloudtrail": "ct.recipientaccountid"}


def regrouped_correlations(correlations: Iterable[Any], partitions: int) -> frozenset[str]:
    """Names of the correlations whose groups are not co-partitioned with their source's topic."""
    if partitions <= 1:
        return frozenset()
    return frozenset(c.name for c in correlations if TOPIC_KEY_FIELDS.get(c.source) not in c.by)


def envelope(source: str, correlations: list[str], event: dict) -> bytes:
    return orjson.dumps({"source": source, "correlations": correlations, "event": event})


def open_envelope(item: Any) -> tuple[str, list[str], dict]:
    """(source, correlation names, event) of a decoded envelope; ValueError naming what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("a regroup envelope is not an object")
    source, names, event = item.get("source"), item.get("correlations"), item.get("event")
    if not isinstance(source, str) or not isinstance(event, dict):
        raise ValueError("a regroup envelope needs a 'source' string and an 'event' object")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("a regroup envelope needs 'correlations', a non-empty list of names")
    return source, names, event
