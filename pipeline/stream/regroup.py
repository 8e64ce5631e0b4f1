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
late (pipeline/correlation/evaluate.py). An envelope without ``origin`` (an earlier
Peregrine's) counts as one legacy origin. An envelope naming a
correlation that the reading worker does not regroup, or does for events of another source than
the envelope's (the rules changed between forwarding and reading), is an ``unknown_correlation``
dead letter, the envelope kept whole; the names it does regroup for that source are evaluated.

Progress records. Only events matching a step are forwarded, so an origin may forward nothing
for long while it is read (a lagging partition whose events match no step). As Kafka Streams
and Flink carry watermarks through a repartition, each batch that read events of a source with
regrouped correlations sends every partition of the regroup topic (explicitly, not by key),
after the batch's forwards, one message with a line per input partition of the batch:
``{"source": ..., "origin": "topic:partition", "progress": ns}``, the newest event time the
correlator took from that partition in the batch (timed, not from the future). The reading
clock moves that origin's newest time there (never back) and counts it as heard from; nothing
is evaluated, it is no event and no dead letter. The producer keeps each partition's records in
the order they are sent (one batch in flight a partition) and a lane's batches are delivered in
order, so a progress record follows the forwards of its origin up to its time on every
partition: a clock never moves past an event that is still to come from that origin. A line
without ``event`` that has ``progress`` is a progress record; a malformed one is a ``schema``
dead letter. A worker from before progress records reads one as an envelope without
``event``: a ``schema`` dead letter (a rolling upgrade leaves such dead letters, no event lost).
One origin heard from neither way for ``regroup_idle`` of event time (its partition not read)
is left out of the watermark until it is heard from again.

Behind records. A worker that starts with a backlog may read one input partition far ahead
of another it owns (Faust takes what the fetcher returns: a first batch can hold one partition's
records only). The partition read first moved a clock that had not heard of the other past the
other's events, which were then late. So before a batch's forwards, a worker whose batch
read a source with regrouped correlations sends every regroup partition one line per input
partition of that source it owns and has not read to its end (its next offset below the
partition's high watermark, pipeline/stream/backlog.py):
``{"source": ..., "origin": "topic:partition", "behind": ns}``, ``ns`` the newest event time of
that source the batch read (its progress records' newest). A clock that has no time for that
origin yet waits for it: its watermark does not move until the origin reports a time, or goes
idle, ``regroup_idle`` past the last behind record's time. An origin the clock has a time for is
left as it is: its time holds the watermark already (and a partition that never reads as
drained, a transactional producer's last commit marker past its last record, holds nothing).
"""

from __future__ import annotations

from typing import Any, Collection, Iterable, Mapping

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


def progress_record(source: str, origin: str, time: int) -> bytes:
    """A progress record: ``origin`` has read events of ``source`` up to ``time`` (ns)."""
    return orjson.dumps({"source": source, "origin": origin, "progress": time})


def behind_record(source: str, origin: str, until: int) -> bytes:
    """A behind record: ``origin`` has events of ``source`` its worker has not read yet; the
    batch sending it read other partitions' events of ``source`` up to ``until`` (ns)."""
    return orjson.dumps({"source": source, "origin": origin, "behind": until})


def is_progress(item: Any) -> bool:
    """Whether a decoded line of the regroup topic is a progress or behind record (no ``event``)."""
    return item.__class__ is dict and ("progress" in item or "behind" in item) and "event" not in item


def open_progress(item: dict) -> tuple[str, str, int, bool]:
    """(source, origin, time, behind) of a decoded progress record (``behind`` False) or behind
    record (True, the time its ``behind``); ValueError naming what is wrong."""
    source, origin = item.get("source"), item.get("origin")
    if not isinstance(source, str) or not source:
        raise ValueError("a regroup progress record needs a 'source' string")
    if not isinstance(origin, str) or not origin or len(origin) > MAX_ORIGIN_CHARS:
        raise ValueError(f"a regroup progress record's 'origin' must be a topic partition name of 1 to {MAX_ORIGIN_CHARS} characters")
    kind = "progress" if "progress" in item else "behind"  # a record's kind is its time's key
    time = item[kind]
    if not isinstance(time, int) or isinstance(time, bool) or time < 0:
        raise ValueError(f"a regroup {kind} record's '{kind}' must be an event time, a non-negative integer (ns)")
    return source, origin, time, kind == "behind"


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


def regrouped_here(names: list[str], source: str, regrouped: Mapping[str, str],
                   loaded: Collection[str]) -> tuple[list[str], str | None]:
    """The names among ``names`` whose correlations this worker evaluates the envelope's event
    (of ``source``) for, and why the others cannot take it (a dead letter's detail), None when
    every one can. ``regrouped``: the correlations this worker regroups, name -> the source
    they read; ``loaded``: the names of the correlations it runs. A correlation named for an
    event of another source than its own (renamed, or its source changed, since the envelope
    was forwarded; or an envelope no Peregrine worker wrote) never matched it: the event was
    lost without a word."""
    for name in names:  # the usual case, every name regrouped here for its source, allocates nothing
        if regrouped.get(name) != source:
            break
    else:
        return names, None
    usable: list[str] = []
    reasons = []
    for name in names:
        reads = regrouped.get(name)
        if reads == source:
            usable.append(name)
        elif reads is not None:
            reasons.append(f"'{name}' reads {reads} events, not {source} ones")
        elif name in loaded:
            reasons.append(f"'{name}' is loaded but not regrouped (its 'by' includes its topic's key, or there is one "
                           "partition): its events are correlated where they arrive")
        else:
            reasons.append(f"'{name}' is not loaded (removed, renamed or disabled)")
    return usable, ("regroup envelope names correlations this worker does not regroup for its event (the rules or "
                    "PEREGRINE_PARTITIONS changed after it was forwarded); its event was not correlated for them: "
                    + "; ".join(reasons))
