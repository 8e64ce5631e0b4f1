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
``{"source": ..., "correlations": [names], "event": {...}, "origin": "topic:partition"}``,
``origin`` being the input topic partition the forwarding worker read the event from.
A regroup partition merges the events of every input partition, each as far along as its
consumer, so the correlations run there on a merged clock: its watermark is the oldest of
its origins' newest event times minus the lateness, and an origin that lags (a backlog, a
slow worker, a partition replayed) holds it back rather than seeing its events dropped as
late; one that forwards nothing for ``regroup_idle`` of event time is left out until it
does (pipeline/correlation/evaluate.py). An envelope without ``origin`` (an earlier
Peregrine's) counts as one legacy origin. An envelope naming a
correlation that the reading worker does not regroup (the rules changed between forwarding
and reading) is an ``unknown_correlation`` dead letter, the envelope kept whole; the names it
does regroup are evaluated.
"""

from __future__ import annotations

from typing import Any, Collection, Iterable

import orjson

# the field each input topic is keyed by (pipeline/ingest/keys.py, the webhook, replay)
TOPIC_KEY_FIELDS = {"syscall": "container.id", "k8s_audit": "ka.target.namespace", "aws_cloudtrail": "ct.recipientaccountid"}


def regrouped_correlations(correlations: Iterable[Any], partitions: int) -> frozenset[str]:
    """Names of the correlations whose groups are not co-partitioned with their source's topic."""
    if partitions <= 1:
        return frozenset()
    return frozenset(c.name for c in correlations if TOPIC_KEY_FIELDS.get(c.source) not in c.by)


# a topic name (at most 249 characters), a colon and a partition number
MAX_ORIGIN_CHARS = 300


def origin_of(topic: str, partition: int) -> str:
    """The origin an envelope names: the input topic partition its event was read from."""
    return f"{topic}:{partition}"


def envelope(source: str, correlations: list[str], event: dict, origin: str | None = None) -> bytes:
    if origin is None:
        return orjson.dumps({"source": source, "correlations": correlations, "event": event})
    return orjson.dumps({"source": source, "correlations": correlations, "event": event, "origin": origin})


def open_envelope(item: Any) -> tuple[str, list[str], dict, str | None]:
    """(source, correlation names, event, origin) of a decoded envelope, the origin None when it
    names none (an earlier Peregrine's); ValueError naming what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("a regroup envelope is not an object")
    source, names, event = item.get("source"), item.get("correlations"), item.get("event")
    if not isinstance(source, str) or not isinstance(event, dict):
        raise ValueError("a regroup envelope needs a 'source' string and an 'event' object")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("a regroup envelope needs 'correlations', a non-empty list of names")
    origin = item.get("origin")
    if origin is not None and (not isinstance(origin, str) or not origin or len(origin) > MAX_ORIGIN_CHARS):
        raise ValueError(f"a regroup envelope's 'origin' must be a topic partition name of 1 to {MAX_ORIGIN_CHARS} characters")
    return source, names, event, origin


def not_regrouped(names: list[str], regrouped: Collection[str], loaded: Collection[str]) -> str | None:
    """Why the correlations among ``names`` that are not in ``regrouped`` cannot take this
    envelope's event (a dead letter's detail), or None when every one is regrouped here.
    ``loaded``: the names of the correlations this worker runs."""
    for name in names:  # the usual case, every name regrouped here, allocates nothing
        if name not in regrouped:
            break
    else:
        return None
    reasons = []
    for name in names:
        if name in regrouped:
            continue
        if name in loaded:
            reasons.append(f"'{name}' is loaded but not regrouped (its 'by' includes its topic's key, or there is one "
                           "partition): its events are correlated where they arrive")
        else:
            reasons.append(f"'{name}' is not loaded (removed, renamed or disabled)")
    return ("regroup envelope names correlations this worker does not regroup (the rules or PEREGRINE_PARTITIONS changed "
            "after it was forwarded); its event was not correlated for them: " + "; ".join(reasons))
