"""The correlation windows: one implementation for ``peregrine scan`` and the worker.

:class:`CorrelationEvaluator` takes events one at a time, in the order they
arrive, and returns the alerts of the matches they complete. Time is the
event's own time (``evt.time``, nanoseconds), never the wall clock: the
*watermark* of a clock is the newest event time that clock has seen (a
regrouped clock's: its merged time, below) minus the allowed lateness. An
event older than its clock's watermark is late and takes no part (counted
in :attr:`CorrelationEvaluator.stats`); a group whose window ends before its
clock's watermark can no longer match and is dropped.

Which clock: the store's current binding says (its ``clock``, with
``clocked_items()`` to recover it). A :class:`~pipeline.correlation.table.TableCorrelationStore`
is bound per message to the message's table partition, and the evaluator
keeps one clock per (partition, source), as Kafka Streams and Flink keep
event time per input partition: partitions are consumed in any order and
the syscall and audit/CloudTrail agents run independently, so one
partition's (or source's) newer events must not make another's late or
expire its groups. A group belongs to one correlation (one source) and lives
in one partition, so it has exactly one clock. A store without a clock (a
dict: ``peregrine scan``, tests) has a single clock for everything, so file
mode runs on the newest event time of the whole input. Memory is bounded by the
limits whatever the input: at most ``max_groups`` groups, at most
``max_partials_per_group`` open partial matches per sequence group, at most
``count`` entries per threshold or distinct group.

State lives in any ``MutableMapping[str, dict]`` (a dict in file mode, a
changelog-backed Faust table in the worker); see :mod:`pipeline.correlation.state`.
Every change to a group is written back with ``store[key] = state``, so a
table logs it.

In the worker: one evaluator per worker process, with ``store`` a Faust
table (``value_serializer="json"``) keyed by :func:`~pipeline.correlation.state.group_key`;
call ``process`` from the agent for each event, and ``reindex()`` after
partitions are assigned or recovered. A group's key must live in the
partition that receives its events: true when the ``by`` fields include the
field the source topic is keyed by (``container.id`` for syscalls). The
others (a K8s threshold by ``ka.user.name``, while audit events are keyed by
namespace) are *regrouped*, as Kafka Streams repartitions before a
``groupBy``: ``process`` leaves (group key, correlation) in ``routes``
instead of evaluating them, the worker sends the event to its regroup topic
keyed by the group key, and evaluates it when it comes back
(``process(event, source, regrouped=names, origin=...)``) in the group's own
partition, on a clock of its own (``source + REGROUPED``).

A regrouped clock merges streams: its partition of the regroup topic takes
the events forwarded from every input partition, each as far along as its
own consumer. Its time is therefore not the newest event time it has seen
but, as a Flink operator's watermark over its input channels (Kafka Streams,
likewise, takes a task's partitions in timestamp order), the *merged* time: the
oldest of its origins' newest event times, never going back. An origin is
the input topic partition the event was read from (``"topic:partition"``,
carried by the envelope; envelopes an earlier Peregrine wrote name none and
count as one legacy origin), so a partition lagging behind the others (a
backlog, a slower worker, a partition replayed after a restart) holds the
watermark back and loses nothing. An origin's time moves with its progress
records only (a legacy origin's with its envelopes): a worker forwards a
batch's events group by group, out of event time, and a regroup batch may end
between two groups. A behind record (:meth:`behind`) makes a clock wait for an
origin its worker has not read to the end yet. Few events are forwarded (only those
matching a step), so an origin also reports how far it has got: as Kafka
Streams and Flink carry watermarks through a repartition, the worker sends
every regroup partition, after each batch's forwards, a progress record per
input partition of the batch (its newest event time for a source with
regrouped correlations, of the events ``process`` took: ``progress_time``);
``progress(source, origin, time)`` moves that origin's newest time (never
back) and counts it as heard from, as an event at ``time`` would, and
evaluates nothing. An origin heard from neither way while the clock's newest
time moves more than ``regroup_idle`` on (its partition not read: a stopped
or not yet assigned worker, a partition without traffic, a worker of an
earlier Peregrine that sends no progress) is idle (Flink's ``withIdleness``,
in event time rather than the wall clock): it is forgotten until it is heard
from again, joining then as a new origin (an event of its older than the
watermark is late). Origins not heard from yet are treated alike: until the
clock's newest time is ``regroup_idle`` past where the clock started (its
first event or progress record, or its recovered time), the merged time
stays at 0, so no event is late and no group expires. Progress records do
not shorten that hold: they say how far the origins that are read have got,
not which origins exist (one whose worker starts later, or has no traffic
yet, sends none), and the hold costs only the time groups are kept. At most
``max_regroup_origins`` origins are kept per clock; past it the least
recently heard is forgotten. The merged time costs O(origins) per regrouped
event or progress record; the other path pays one set lookup per event (its
source has regrouped correlations or not) and, for those sources, one
comparison.

``reindex()`` rebuilds the index per clock from the stored groups; a clock
it has not seen restarts from the newest event time its recovered groups
record (a lower bound of what the partition had seen: never makes an event
late that was not), a clock it already runs keeps its time (a partition
that came back may have moved on meanwhile; the larger of the two is kept).
A regrouped clock's groups record the newest time of any origin, which is no
lower bound of its merged time: a regrouped clock it has not seen restarts
with its origins unknown (merged time 0, its newest time the recovered one,
so the rule above holds: nothing is late until ``regroup_idle`` has passed),
one it already runs keeps its origins and merged time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field
from time import time_ns
from typing import Any

from pipeline.correlation import held, window
from pipeline.correlation.model import Correlation, CorrelationLimits, DistinctCount, Sequence, Step, Threshold
from pipeline.correlation.output import Match
from pipeline.correlation.state import (GroupIndex, State, Store, group_key, jsonable, new_state, newest_time, plain_json,
                                        split_key)
from pipeline.errors import ConfigError
from pipeline.ingest.keys import HOST, host_key
from pipeline.json_bytes import json_bytes
from pipeline.fields.registry import MISSING, UnknownField
from pipeline.rules.model import Priority

log = logging.getLogger("peregrine.correlation")

REGROUPED = "@regrouped"  # a regrouped correlation's clock: (partition, its source + this)
TIME_FIELDS = ("evt.time",)
ID_FIELDS = ("evt.id", "evt.num", "ka.auditid", "ct.id")
# a source whose events carry an id of their own, the same for every delivery and (K8s audit)
# every stage of one request: a replayed event is known by its id alone
UNIQUE_IDS = {"k8s_audit": ("ka.auditid",), "aws_cloudtrail": ("ct.id",)}
# a syscall event without an id (a collector that sends no evt.num) is known by its process and
# type (``"<pid>/<evt.type>"``) with its time: the same event delivered again has them too, an
# ordinal would not (and a replay could count it again, or complete a match twice)
FALLBACK_IDS = {"syscall": ("proc.pid", "evt.type")}
SUMMARY_FIELDS = {
    "syscall": ("evt.type", "proc.name", "proc.cmdline", "fd.name"),
    "k8s_audit": ("ka.verb", "ka.target.resource", "ka.target.subresource", "ka.target.name", "ka.user.name", "ka.response.code"),
    "aws_cloudtrail": ("ct.name", "ct.user", "ct.srcip", "ct.error"),
}
SUMMARY_MAX = 200
UNTIL = -1  # the step index of a sequence's `until`


@dataclass(frozen=True, slots=True)
class ContributingEvent:
    """One event of a completed match: its id, time, a short summary, and the step it matched."""

    id: Any
    time: int
    summary: str
    step: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "summary": self.summary, "step": self.step}


@dataclass(frozen=True, slots=True)
class CorrelationAlert:
    """One completed match of a correlation in one group."""

    rule: str
    kind: str
    priority: Priority
    output: str
    source: str
    tags: tuple[str, ...]
    group: dict[str, Any]
    group_key: str
    time: int  # event time of the event that completed the match
    events: tuple[ContributingEvent, ...]
    suppressed: int = 0  # matches of this rule and group not alerted since the previous alert
    fields: dict[str, Any] = field(default_factory=dict)  # the output's values, as a rule alert's output_fields
    count: int = 0  # events in the match (a large threshold's alert lists only the newest of them)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "correlation": self.kind,
            "priority": self.priority.label,
            "output": self.output,
            "source": self.source,
            "tags": list(self.tags),
            "group": dict(self.group),
            "group_key": self.group_key,
            "time": self.time,
            "events": [event.to_dict() for event in self.events],
            "suppressed": self.suppressed,
            "count": self.count,
        }


@dataclass(slots=True)
class CorrelationStats:
    """What the evaluator did that no alert shows."""

    events: int = 0
    late: int = 0  # older than the watermark: ignored
    untimed: int = 0  # no usable evt.time: ignored
    future: int = 0  # time more than max_future ahead of the wall clock: ignored
    alerts: int = 0
    suppressed: int = 0  # completed matches not alerted because of throttling
    evicted_groups: int = 0  # dropped to stay under max_groups
    dropped_partials: int = 0  # dropped to stay under max_partials_per_group
    dropped_held: int = 0  # held events dropped to stay under max_held_per_group
    expired_groups: int = 0  # dropped because they can no longer match
    corrupt_groups: int = 0  # dropped because their stored state could not be read
    idle_origins: int = 0  # regroup origins left out of their clock's watermark after regroup_idle without an envelope
    progress: int = 0  # regroup progress records taken (an input partition's newest event time; no event)
    behind: int = 0  # origins a regroup clock waited for on a behind record (unread events, no time of theirs yet)
    forgotten_origins: int = 0  # regroup origins forgotten to stay under max_regroup_origins


class _SourceFields:
    """How to read an event's time, id and summary for one source."""

    __slots__ = ("time", "time_key", "id", "unique_ids", "summary", "fallback")

    def __init__(self, source: str, registry: Any) -> None:
        self.time = _native_first(registry, TIME_FIELDS)  # read for every event: the int under evt.time inline
        if self.time is None:
            raise ConfigError(f"source '{source}' has no event time field ({', '.join(TIME_FIELDS)}); correlations need one")
        # where ``time`` finds an int time as it is (None: the extractor decides): process() reads it
        # there itself, one call less for every event
        self.time_key = _native_int_key(registry, TIME_FIELDS)
        unique = UNIQUE_IDS.get(source)
        self.id = (_first_bound(registry, unique) if unique else None) or _first_bound(registry, ID_FIELDS)
        self.unique_ids = unique is not None
        fallback = [_first_bound(registry, (name,)) for name in FALLBACK_IDS.get(source, ())]
        self.fallback = tuple(fallback) if fallback and None not in fallback else None
        self.summary = tuple(
            (name, extract) for name in SUMMARY_FIELDS.get(source, ()) if (extract := _first_bound(registry, (name,))) is not None
        )


def _first_field(registry: Any, names: Iterable[str]) -> Any:
    """The first of ``names`` the registry knows, bound (a BoundField), or None."""
    for name in names:
        try:
            return registry.bind(name)
        except UnknownField:
            continue
    return None


def _first_bound(registry: Any, names: Iterable[str]) -> Callable[[Any], Any] | None:
    bound = _first_field(registry, names)
    return bound.extract if bound is not None else None


def _native_int_key(registry: Any, names: Iterable[str]) -> str | None:
    """The key under which :func:`_native_first`'s extractor of ``names`` returns the event's
    value as it is when that value is an int; None when it has no such inline read."""
    bound = _first_field(registry, names)
    if bound is None or bound.native_key is None or bound.native_class is not int or bound.native_except is not None:
        return None
    return bound.native_key


def _native_first(registry: Any, names: Iterable[str]) -> Callable[[Any], Any] | None:
    """:func:`_first_bound`, reading a value of the field's native class (an int time) inline,
    as the compiled rules do (BoundField's promise); other shapes go to the extractor."""
    bound = _first_field(registry, names)
    if bound is None:
        return None
    key, native, slow = bound.native_key, bound.native_class, bound.extract
    if key is None or native is None or bound.native_except is not None:
        return slow

    def extract(event: Any, _key: str = key, _native: type = native, _slow: Callable = slow) -> Any:
        value = event.get(_key)
        return value if value.__class__ is _native else _slow(event)

    return extract


def _replayed(record: dict[str, Any], entries: Iterable[dict[str, Any]], by_id: bool = False) -> bool:
    """Whether ``entries`` already hold this event: the same id (its own, not an ordinal, which
    a replay does not keep) at the same time; ``by_id``, the same id at any time (a K8s audit
    request's stages, a CloudTrail event: their ids are unique)."""
    event_id = record["id"]
    if isinstance(event_id, str) and event_id.startswith("#"):
        return False
    if by_id:
        return any(entry["id"] == event_id for entry in entries)
    return any(entry["id"] == event_id and entry["t"] == record["t"] for entry in entries)


def _present(value: Any) -> bool:
    """A value a group, a distinct count or a binding can use: not missing, and not Falco's
    ``<NA>`` (what it prints for a field it has no value for)."""
    return value is not None and value is not MISSING and value != "<NA>"


class _Event:
    """The event being evaluated, with its id and summary computed at most once."""

    __slots__ = ("raw", "time", "fields", "_record", "ordinal")

    def __init__(self, raw: Any, time: int, fields: _SourceFields, ordinal: int) -> None:
        self.raw = raw
        self.time = time
        self.fields = fields
        self.ordinal = ordinal
        self._record: tuple[Any, str] | None = None

    def ident(self) -> tuple[Any, str]:
        if self._record is None:
            raw = self.raw
            event_id = self.fields.id(raw) if self.fields.id is not None else MISSING
            if not _present(event_id):
                event_id = self._fallback_id(raw)
            parts = []
            for name, extract in self.fields.summary:
                value = extract(raw)
                if _present(value) and value != "":
                    try:
                        parts.append(f"{name}={value}")
                    except RecursionError:  # nested deeper than str() recurses: the group was taken for corrupt and dropped
                        parts.append(f"{name}={json_bytes(value)[:SUMMARY_MAX].decode('utf-8', 'replace')}")
            summary = " ".join(parts)
            if len(summary) > SUMMARY_MAX:
                summary = summary[: SUMMARY_MAX - 1] + "…"
            self._record = (jsonable(event_id), summary)
        return self._record

    def _fallback_id(self, raw: Any) -> str:
        """An id for an event without one: ``"<pid>/<evt.type>"`` for a syscall event that
        has both, else its ordinal (``"#<n>"``, which a replay does not keep)."""
        if self.fields.fallback is not None:
            values = [extract(raw) for extract in self.fields.fallback]
            if all(_present(value) and value.__class__ in (int, str) for value in values):
                return "/".join(str(value) for value in values)
        return f"#{self.ordinal}"

    def record(self, step: Step) -> dict[str, Any]:
        event_id, summary = self.ident()
        out: dict[str, Any] = {"id": event_id, "t": self.time, "sum": summary, "step": step.name}
        if step.record:
            out["f"] = {name: jsonable(value) if _present(value := extract(self.raw)) else None for name, extract in step.record}
        return out


LEGACY_ORIGIN = None  # the origin of the envelopes that name none (forwarded by an earlier Peregrine)


class _Origins:
    """A regrouped clock's inputs: per origin (the input topic partition an envelope was
    forwarded from), the newest event time it forwarded or reported (a progress record) and
    the clock's newest time when it was last heard from either way (``heard``, kept in that
    order: the least recently heard first)."""

    __slots__ = ("newest", "heard", "start", "high")

    def __init__(self, start: int) -> None:
        self.newest: dict[Hashable, int] = {}
        self.heard: dict[Hashable, int] = {}
        self.start = start  # the clock's newest time when it started or was recovered: the origins were unknown
        self.high = start  # the newest event time of any origin


class CorrelationEvaluator:
    """Runs loaded correlations over events in arrival order; see the module docstring."""

    def __init__(
        self,
        correlations: Iterable[Correlation],
        registry_for: Callable[[str], Any] | None = None,
        *,
        limits: CorrelationLimits | None = None,
        store: Store | None = None,
        regroup: Iterable[str] = (),
        wall_clock_ns: Callable[[], int] = time_ns,
    ) -> None:
        """``regroup``: the names of correlations whose groups are not co-partitioned with their
        source's topic (see the module docstring): :meth:`process` only routes their events
        (:attr:`routes`), and evaluates them when called with ``regrouped``. ``wall_clock_ns``
        is read only to refuse events from the future (``max_future``)."""
        if registry_for is None:
            from pipeline.fields import registry_for as default  # type: ignore[attr-defined]

            registry_for = default
        self.limits = limits or CorrelationLimits()
        self.correlations = tuple(c for c in correlations if c.enabled)
        self._by_source: dict[str, list[Correlation]] = {}
        self._fields: dict[str, _SourceFields] = {}
        entries: list[tuple[str, Any, str]] = []
        self._entry: dict[str, tuple[int, int]] = {}
        for number, correlation in enumerate(self.correlations):
            steps = correlation.steps if isinstance(correlation, Sequence) else (correlation.step,)
            for index, step in enumerate(steps):
                entries.append((f"{number}:{index}", step.condition, correlation.source))
                self._entry[f"{number}:{index}"] = (number, index)
            if isinstance(correlation, Sequence) and correlation.until is not None:
                entries.append((f"{number}:until", correlation.until.condition, correlation.source))
                self._entry[f"{number}:until"] = (number, UNTIL)
            if correlation.output_format is None:
                raise ConfigError(f"correlation '{correlation.name}' has no compiled output; load it with CorrelationLoader")
            if correlation.span_ns > self.limits.max_window_ns:
                raise ConfigError(
                    f"correlation '{correlation.name}' spans {correlation.span_ns}ns, over the limit max_window ({self.limits.max_window_ns}ns)"
                )
            self._by_source.setdefault(correlation.source, []).append(correlation)
            if correlation.source not in self._fields:
                self._fields[correlation.source] = _SourceFields(correlation.source, registry_for(correlation.source))
        # every step of every correlation in one evt.type-indexed engine per source: an event
        # is tested only against the steps that can match its type
        from pipeline.engine import Engine

        engine = Engine(entries, {}, registry_for, rule_matching="all")
        self._steps_matching = {source: engine.evaluator(source) for source in self._by_source}
        self._source_of = {correlation.name: correlation.source for correlation in self.correlations}
        self.regroup = frozenset(regroup) & set(self._source_of)
        self._regrouped_numbers = frozenset(n for n, c in enumerate(self.correlations) if c.name in self.regroup)
        # the sources of the regrouped correlations: their events are routed, and the worker reports
        # the progress of the input partitions it reads them from (``progress_time``)
        self.regroup_sources = frozenset(self._source_of[name] for name in self.regroup)
        # the newest event time process() accepted (timed, not from the future) on its own clock for a
        # source in ``regroup_sources``, since the caller last set it to -1: the worker reads it per
        # message, as its input partition's progress (pipeline/stream/batch.py); never set otherwise
        self.progress_time = -1
        # a regrouped correlation's groups keep event time on their own clocks: their events come
        # from every input partition, through the regroup topic's partition of their group
        self._clock_source = {c.name: c.source + REGROUPED if c.name in self.regroup else c.source for c in self.correlations}
        self.routes: list[tuple[str, str]] = []  # (group key, correlation name): the last process()'s events to regroup
        # syscall correlations grouped by container.id: where in ``by`` it is. A group whose
        # container.id is "host" gets the event's node in its key (pipeline/ingest/keys.py): host
        # events are partitioned by node, and two nodes' host processes are not one group. Their
        # events come from one collector, in order: their sequences hold no early steps
        self._host_scoped = {correlation.name: correlation.by.index("container.id") for correlation in self.correlations
                             if correlation.source == "syscall" and "container.id" in correlation.by}
        self.stats = CorrelationStats()
        self.clocks: dict[Hashable, int] = {}  # clock -> its time: the newest event time it has seen (regrouped: merged)
        self._origins: dict[Hashable, _Origins] = {}  # a regrouped clock -> its origins
        self._wall_clock_ns = wall_clock_ns
        self._horizon = -1  # the latest event time accepted, as of the last look at the wall clock
        self.index = GroupIndex()
        self.store = store if store is not None else {}
        self._ordinal = 0
        if len(self.store):
            self.reindex()

    # -- the store and its clocks

    @property
    def store(self) -> Store:
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        """A new store (the worker's table once it exists); call :meth:`reindex` after."""
        self._store = store
        self._clocked = hasattr(store, "clock") and hasattr(store, "clocked_items")

    def _clock(self, source: str) -> Hashable:
        """The clock of an event of ``source`` (``source + REGROUPED`` for regrouped correlations)
        under the store's current binding."""
        return (self._store.clock, source) if self._clocked else None  # type: ignore[attr-defined]

    def _refresh_horizon(self) -> int:
        """The latest event time a clock may move to: the wall clock plus ``max_future``. Read
        again only when an event is past the last value (which only grows)."""
        self._horizon = self._wall_clock_ns() + self.limits.max_future_ns
        return self._horizon

    def watermark(self, clock: Hashable = None) -> int:
        """The watermark of ``clock``: its time (the newest event time it has seen; for a
        regrouped clock, the merged time of its origins) minus the allowed lateness."""
        return self.clocks.get(clock, 0) - self.limits.allowed_lateness_ns

    @property
    def max_time(self) -> int:
        """The newest event time of any clock (0 before the first event)."""
        return max(self.clocks.values(), default=0)

    @property
    def open_groups(self) -> int:
        return len(self.index)

    def sources(self) -> tuple[str, ...]:
        return tuple(self._by_source)

    # -- events

    def event_time(self, event: Any, source: str) -> int:
        """The event's time as the correlations read it; -1 when it has none (or no correlation
        reads ``source``)."""
        fields = self._fields.get(source)
        time = fields.time(event) if fields is not None else None
        return time if isinstance(time, int) and not isinstance(time, bool) else -1

    def process(self, event: Any, source: str, regrouped: Collection[str] | None = None,
                origin: Hashable = LEGACY_ORIGIN) -> list[CorrelationAlert]:
        """Feed one event; returns the alerts of the matches it completes (often none).

        The correlations in :attr:`regroup` are not evaluated here: an event matching one of
        their steps leaves (group key, name) in :attr:`routes`, for the caller to send to the
        regroup topic keyed by the group key. Called with ``regrouped`` (names, for an event
        that came back from that topic), only those correlations are evaluated, on the
        merged clock of the origins (``origin``: the input topic partition the event was
        forwarded from, ``"topic:partition"``; None for an envelope that names none)."""
        if self.routes:
            self.routes = []
        steps_matching = self._steps_matching.get(source)
        if steps_matching is None:
            return []
        fields = self._fields[source]
        self._ordinal += 1
        self.stats.events += 1
        key = fields.time_key
        time = event.get(key) if key is not None else None  # fields.time's own inline read
        if time.__class__ is not int:
            time = fields.time(event)
            if not isinstance(time, int) or isinstance(time, bool):
                self.stats.untimed += 1
                return []
        matched = steps_matching(event)
        hits: dict[int, set[int]] = {}
        if matched:
            for entry in matched:
                number, index = self._entry[entry.name]
                hits.setdefault(number, set()).add(index)
        if regrouped is not None:
            hits = {n: i for n, i in hits.items() if self.correlations[n].name in regrouped and n in self._regrouped_numbers}
            clock = self._clock(source + REGROUPED)
            watermark = self._merged_watermark(clock, origin, time)
            if watermark is None:
                return []
        else:
            routed = source in self.regroup_sources
            if routed:
                self._route(event, hits)
            clock = (self._store.clock, source) if self._clocked else None  # self._clock(source), inline: every event
            newest = self.clocks.get(clock, 0)
            if time > newest:
                if time > self._horizon and time > self._refresh_horizon():
                    self.stats.future += 1
                    return []
                self.clocks[clock] = newest = time
            if routed and time > self.progress_time:
                self.progress_time = time
            watermark = newest - self.limits.allowed_lateness_ns
        if time < watermark:
            self.stats.late += 1
            return []
        alerts: list[CorrelationAlert] = []
        if hits:
            current = _Event(event, time, fields, self._ordinal)
            for number, indexes in hits.items():
                self._evaluate(self.correlations[number], current, indexes, clock, watermark, alerts)
        expired = self.index.expired(watermark, clock)  # self._expire, one call less for the usual event (none due)
        if expired:
            self._forget(expired)
        return alerts

    def progress(self, source: str, origin: str, time: int) -> None:
        """A progress record from the regroup topic: ``origin`` (an input topic partition) has
        read events of ``source`` up to ``time``, whether or not it forwarded any. Its newest
        time moves there (never back) and it counts as heard from, as if it had forwarded an
        event at ``time``, on the regrouped clock of ``source`` under the store's current
        binding; the watermark may move and groups expire. Nothing is evaluated, nothing is
        counted as an event. A source without regrouped correlations here (the rules changed)
        or a time from the future (another worker's wall clock ahead) is ignored."""
        if source not in self.regroup_sources:
            return
        clock = self._clock(source + REGROUPED)
        watermark = self._merged_watermark(clock, origin, time, event=False)
        if watermark is None:
            return
        self.stats.progress += 1
        self._expire(clock, watermark)

    def behind(self, source: str, origin: str, until: int) -> None:
        """A behind record from the regroup topic: ``origin`` (an input topic partition) has
        events of ``source`` its worker has not read yet, of unknown time; that worker's batch
        read others up to ``until``. If the regrouped clock has no time of ``origin``, it waits
        for it: ``origin`` joins its origins at -1, so the merged time (their oldest) cannot
        move until ``origin`` reports a time, or goes idle ``regroup_idle`` past ``until`` (the
        record is heard from at ``until``: the batch's forwards that follow it, up to that
        time, do not make it idle). An origin the clock has a time of is left as it is: a
        backlog that never reads as drained (a transactional producer's last commit marker)
        holds no watermark for ever."""
        if source not in self.regroup_sources:
            return
        clock = self._clock(source + REGROUPED)
        origins = self._origins.get(clock)
        if origins is None:  # started by its first time (_merged_watermark)
            origins = self._origins[clock] = _Origins(-1)
            self.clocks.setdefault(clock, 0)
        if until > self._horizon and until > self._refresh_horizon():
            until = origins.high  # from the future: heard now
        newest, heard = origins.newest, origins.heard
        known = newest.get(origin)
        if known is None:
            self._make_room(origins)
            newest[origin] = -1
            self.stats.behind += 1
        elif known >= 0:
            return
        else:
            del heard[origin]
        # at the end of ``heard`` though ``until`` may be past ``high``: another origin heard
        # before ``high`` reaches it can only be found idle later than it would, never earlier
        heard[origin] = max(until, origins.high)

    def _make_room(self, origins: _Origins) -> None:
        """Room for one more origin: past ``max_regroup_origins`` the least recently heard is forgotten."""
        if len(origins.newest) >= self.limits.max_regroup_origins:
            forgotten = next(iter(origins.heard))
            del origins.heard[forgotten], origins.newest[forgotten]
            self.stats.forgotten_origins += 1

    def _merged_watermark(self, clock: Hashable, origin: Hashable, time: int, event: bool = True) -> int | None:
        """A regrouped clock's watermark once ``origin`` forwarded an event (else, ``event``
        False, a progress record) at ``time`` (None: ``time`` is from the future; an event is
        counted): the oldest of its active origins' newest times minus the lateness, never
        going back. An origin is idle, and forgotten, once the clock's newest time moved more
        than ``regroup_idle`` past the last time it was heard from; until the clock's newest
        time is that far past where the clock started (or was recovered), origins not heard
        from yet may still forward anything: nothing is late."""
        origins = self._origins.get(clock)
        if origins is None or time > origins.high:
            if time > self._horizon and time > self._refresh_horizon():
                if event:
                    self.stats.future += 1
                return None
            if origins is None:
                origins = self._origins[clock] = _Origins(time)
            elif origins.start < 0:  # created by a behind record: starts at its first time
                origins.start = time
            origins.high = time
        high = origins.high
        newest, heard = origins.newest, origins.heard
        known = newest.get(origin)
        # an origin's time is what its progress records say: its worker forwards a batch's events
        # group by group, so its envelopes arrive out of event time, and one regroup batch may end
        # between them; a legacy origin (an earlier Peregrine's envelopes, no progress) moves with them
        moves = not event or origin is LEGACY_ORIGIN
        if known is None:
            self._make_room(origins)
            newest[origin] = time if moves else -1
        else:
            if moves and time > known:
                newest[origin] = time
            del heard[origin]
        heard[origin] = high  # ``heard`` stays in the order of its values: ``high`` only grows
        merged = self.clocks.get(clock, 0)
        idle = self.limits.regroup_idle_ns
        if high - origins.start > idle:  # the origins not heard from yet are idle
            floor = high - idle
            quiet = []
            for name, at in heard.items():  # the least recently heard first; ``origin`` (at ``high``) last
                if at >= floor:
                    break
                quiet.append(name)
            for name in quiet:
                del heard[name], newest[name]
            self.stats.idle_origins += len(quiet)
            oldest = min(newest.values())  # ``origin`` is active: never empty
            if oldest > merged:
                merged = oldest
        self.clocks[clock] = merged
        return merged - self.limits.allowed_lateness_ns

    def _evaluate(self, correlation: Correlation, current: "_Event", indexes: set[int], clock: Hashable, watermark: int,
                  alerts: list[CorrelationAlert]) -> None:
        """One correlation's step of the event. A group whose stored state this evaluator cannot
        read (a changelog record corrupted, or written by another version in a shape it does
        not know) made every later event of the group raise, and the batch dead-letter each one
        with its rule alerts: such a group is dropped, counted, and the event taken again by a
        fresh one. An error that a fresh group raises too goes to the caller."""
        kind = self._sequence if isinstance(correlation, Sequence) else self._windowed
        found: list[CorrelationAlert] = []
        try:
            kind(correlation, current, indexes, clock, watermark, found)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - a stored group's state is data, not code
            values = self._group(correlation, current.raw)
            if values is None:
                raise
            key = group_key(correlation.name, values)
            self._drop_corrupt(key)
            found = []
            kind(correlation, current, indexes, clock, watermark, found)  # type: ignore[operator]
        alerts.extend(found)

    def _drop_corrupt(self, key: str) -> None:
        self.stats.corrupt_groups += 1
        log.warning("correlation group %.200s dropped: its state could not be read", key)
        if key in self.index:
            self.index.remove(key)
        try:
            self._store.pop(key, None)
        except Exception:  # noqa: BLE001 - the deletion is what matters
            pass

    def _route(self, event: Any, hits: dict[int, set[int]]) -> None:
        """Move the regrouped correlations out of ``hits`` into :attr:`routes` (an event whose
        group is incomplete, a missing ``by`` field, goes nowhere, as it would be ignored)."""
        for number in [n for n in hits if n in self._regrouped_numbers]:
            del hits[number]
            correlation = self.correlations[number]
            values = self._group(correlation, event)
            if values is not None:
                self.routes.append((group_key(correlation.name, values), correlation.name))

    def forget_clocks(self, partitions: Collection[int]) -> None:
        """The clocks of these table partitions start over at the next :meth:`reindex`, from
        the newest event time their groups record: a batch of theirs was given up after it
        moved them, and its events, read again, must not be late on them."""
        for clock in [clock for clock in self.clocks if isinstance(clock, tuple) and clock[0] in partitions]:
            del self.clocks[clock]
            self._origins.pop(clock, None)

    def reindex(self) -> None:
        """Rebuild the in-memory index, per clock, from the store: after a Faust table's
        partitions were (re)assigned or recovered from the changelog, so that their groups
        count toward ``max_groups`` and expire on their own clock. A clock not running yet
        starts from the newest event time its groups record (see the module docstring).
        Groups of a correlation this evaluator does not run (removed or disabled since they
        were written) can never match again and are dropped."""
        groups: list[tuple[str, State, Hashable]] = []
        orphans: list[str] = []
        if self._clocked:
            stored = self._store.clocked_items()  # type: ignore[attr-defined]
        else:
            stored = [(key, state, None) for key, state in self._store.items()]
        corrupt: list[str] = []
        regrouped: dict[Hashable, int] = {}  # a regrouped clock -> the newest time its groups record
        for key, state, partition in stored:
            try:
                source = self._clock_source.get(split_key(key)[0])
                if source is not None:
                    time, _ = newest_time(state), int(state.get("d") or 0)
            except Exception:  # noqa: BLE001 - a group this evaluator cannot read: dropped, never a stopped worker
                corrupt.append(key)
                continue
            if source is None:
                orphans.append(key)
                continue
            clock = (partition, source) if self._clocked else None
            groups.append((key, state, clock))
            if time <= self._horizon or time <= self._refresh_horizon():
                if source.endswith(REGROUPED):
                    regrouped[clock] = max(time, regrouped.get(clock, 0))
                elif time > self.clocks.get(clock, 0):
                    self.clocks[clock] = time
        for clock, time in regrouped.items():
            # the groups' times are the newest of any origin, not a lower bound of the merged time:
            # the clock starts over with its origins unknown (see the module docstring)
            origins = self._origins.get(clock)
            if origins is None:
                self._origins[clock] = _Origins(time)
                self.clocks.setdefault(clock, 0)
            elif time > origins.high:
                origins.high = time
        self.index = GroupIndex.rebuild(groups)
        for key in orphans:
            self._store.pop(key, None)
        self.stats.expired_groups += len(orphans)
        for key in corrupt:
            self._drop_corrupt(key)

    def expire(self, watermark: int | None = None) -> int:
        """Drop every group that can no longer match or throttle: each before its own clock's
        watermark, or every one before ``watermark`` when given."""
        return sum(self._expire(clock, self.watermark(clock) if watermark is None else watermark)
                   for clock in self.index.clocks())

    def _expire(self, clock: Hashable, watermark: int) -> int:
        expired = self.index.expired(watermark, clock)
        self._forget(expired)
        return len(expired)

    def _forget(self, expired: list[str]) -> None:
        """The groups the index found expired leave the store."""
        for key in expired:
            self._store.pop(key, None)
        self.stats.expired_groups += len(expired)

    # -- groups

    def _group(self, correlation: Correlation, event: Any) -> tuple[Any, ...] | None:
        """The ``by`` values of the event's group; for a host group (container.id "host") one
        more, the node's key, which goes into the store key but not into the alert's group."""
        values = []
        for extract in correlation.by_extract:
            value = extract(event)
            if not _present(value) or value == "":
                return None
            values.append(jsonable(value))
        at = self._host_scoped.get(correlation.name)
        if at is not None and values[at] == HOST and type(event) is dict:
            values.append(host_key(event))
        return tuple(values)

    def _save(self, key: str, state: State, deadline: int, alive: bool, clock: Hashable) -> None:
        if not alive:
            if key in self.index:
                self.index.remove(key)
            self._store.pop(key, None)
            return
        if key not in self.index and len(self.index) >= self.limits.max_groups:
            victim = self.index.oldest()
            if victim is not None:
                self.index.remove(victim)
                self._store.pop(victim, None)
                self.stats.evicted_groups += 1
        state["d"] = deadline
        self._store[key] = state
        self.index.touch(key, deadline, clock)

    def _throttle_ns(self, correlation: Correlation) -> int:
        return correlation.throttle_ns if correlation.throttle_ns is not None else self.limits.throttle_ns

    def _throttled(self, correlation: Correlation, state: State, time: int) -> bool:
        """Whether a completed match at ``time`` is suppressed; updates the state's alert bookkeeping."""
        period = self._throttle_ns(correlation)
        last = state.get("a")
        if period and last is not None and last - period < time < last + period:  # a late completion too
            state["s"] = state.get("s", 0) + 1
            self.stats.suppressed += 1
            return True
        return False

    def _throttle_deadline(self, correlation: Correlation, state: State) -> int:
        period = self._throttle_ns(correlation)
        last = state.get("a")
        return last + period if period and last is not None else 0

    # -- sequences

    def _sequence(self, correlation: Sequence, current: _Event, indexes: set[int], clock: Hashable, watermark: int,
                  alerts: list[CorrelationAlert]) -> None:
        event, time = current.raw, current.time
        steps = correlation.steps
        hits = [index in indexes for index in range(len(steps))]
        until = correlation.until
        until_hit = UNTIL in indexes
        values = self._group(correlation, event)
        if values is None:
            return
        key = group_key(correlation.name, values)
        state = self._store.get(key)
        # held for an earlier step that may still arrive; not for a container's syscall sequence: one
        # collector's events, in its order (holding every exec for the lateness cost the batch processor 5-8%)
        early_capable = correlation.name not in self._host_scoped
        early = (until_hit or any(hits[1:])) and early_capable
        if state is None:
            if not (hits[0] or early):
                return
            state = new_state()
        span = correlation.maxspan_ns
        waiting = [entry for entry in state.get("h", ()) if entry["t"] >= watermark]
        # a partial an until ended (``"u"``)
        # (or left to an older event, ``"o"``) at or before the watermark can take no event any more
        partials = [p for p in state.get("p", ()) if p["f"] + span >= watermark and ("u" not in p or p["u"] > watermark)
                    and ("o" not in p or p["o"] > watermark)]
        if until_hit:  # early: steps older than the until may still arrive, the partials it follows end at it
            partials = [p for p in partials if not (p["f"] <= time and _binds_match(until, event, p["b"]))
                        or (early and held.end(p, time))]
        kept: list[dict[str, Any]] = []
        grown: list[dict[str, Any]] = []  # started or advanced by this event: the held events are offered to them
        completed: list[dict[str, Any]] = []
        last_index = len(steps)
        by_id = current.fields.unique_ids
        for partial in partials:
            index = partial["n"]
            step = steps[index]
            if not (hits[index] and partial["l"] <= time <= partial["f"] + span and ("o" not in partial or time < partial["o"])
                    and _binds_match(step, event, partial["b"])):
                kept.append(partial)
                continue
            if held.broken(partial, time):
                kept.append(partial)  # an until came between its last event and this one; an older step may still come
                continue
            record = current.record(step)
            if _replayed(record, partial["e"], by_id):
                kept.append(partial)  # this very event delivered again (a replay) takes no other step
                continue
            if step.binds:
                # what it binds may be the wrong value (a decoy write before the payload's): the
                # partial stays open too, for a later event to advance it another way
                kept.append(partial)
            elif early_capable and max(partial["l"], watermark) < time:
                kept.append(held.left_to_older(partial, time))  # for an older event that may still arrive
            advanced = held.mark(_advanced(partial, time, record, _bind(step, event, partial["b"])), waiting, partial.get("u"))
            (completed if advanced["n"] == last_index else grown).append(advanced)
        if hits[0] and not until_hit:
            first = current.record(steps[0])
            # a replayed first event starts its chain again (the same match, the same alert id); an
            # alerted chain's partial left to older events (``"a"``) is not that chain
            if not any(_replayed(first, p["e"][:1], by_id) for p in kept + grown if "a" not in p):
                grown.append(held.mark({"n": 1, "f": time, "l": time, "e": [first], "b": _bind(steps[0], event, {})}, waiting))
        for partial in grown:
            kept.extend(self._take_held(partial, waiting, steps, span, by_id, completed, watermark) if waiting else (partial,))
        if completed:
            kept, completed = _closed_with(kept, completed, last_index)
        if early:
            waiting = self._hold(correlation, current, indexes, waiting)
            # an older end of a chain a newer event ended: the newer one may end a partial already
            # open, which reached the last step after this event (in event time it would have)
            if hits[-1] and waiting and held.ended_earlier(waiting, current.ident()[0], time, last_index - 1):
                more: list[dict[str, Any]] = []
                kept = [out for partial in kept for out in
                        (self._take_held(partial, waiting, steps, span, by_id, more, watermark)
                         if partial["n"] == last_index - 1 and partial["l"] > time else (partial,))]
                if more:
                    kept, more = _closed_with(kept, more, last_index)
                    completed.extend(more)
        if completed and waiting:  # what a match took is held only for chains bound otherwise (held.spent)
            waiting = held.spent(waiting, completed, last_index - 1, span)
        if waiting:
            state["h"] = waiting
        else:
            state.pop("h", None)
        state["p"] = self._bounded(kept, watermark)
        for match in completed:
            if self._throttled(correlation, state, time):
                continue
            alerts.append(self._alert(correlation, values, key, current, match["e"], state, len(match["e"]), 0))
        throttle_until = self._throttle_deadline(correlation, state)
        held_until = max((entry["t"] for entry in waiting), default=0)
        deadline = max(max((p["f"] + span for p in state["p"]), default=0), throttle_until, held_until)
        self._save(key, state, deadline, bool(state["p"]) or max(throttle_until, held_until) >= watermark, clock)

    def _take_held(self, partial: dict[str, Any], waiting: list[dict[str, Any]], steps: tuple[Step, ...], span: int,
                   by_id: bool, completed: list[dict[str, Any]], watermark: int) -> list[dict[str, Any]]:
        """The partials ``partial`` grows into with the held events (itself among them unless a step
        without bindings took it on); the matches completed go to ``completed``."""
        index = partial["n"]
        step = steps[index]
        fitting = sorted((entry for entry in waiting
                          if entry["k"] == index and partial["l"] <= entry["t"] <= partial["f"] + span
                          and held.fits(entry, partial["b"]) and not held.broken(partial, entry["t"])
                          and ("o" not in partial or entry["t"] < partial["o"])
                          and not _replayed(entry["r"], partial["e"], by_id)
                          and ("c" not in entry or not held.ended(entry, partial["b"], partial["l"]))
                          and ("x" not in entry or not held.taken(entry, partial["b"]))), key=lambda entry: entry["t"])
        if not fitting:
            return [partial]
        # without bindings the earliest held event takes the step; the partial stays open for an
        # older one that may still arrive
        if step.binds:
            out = [partial]
        else:
            first = fitting[0]["t"]
            out = [held.left_to_older(partial, first)] if max(partial["l"], watermark) < first else []
        for entry in fitting if step.binds else fitting[:1]:  # without bindings, the first event takes the step
            bound = dict(partial["b"], **entry["v"]) if entry["v"] else partial["b"]
            advanced = held.mark(_advanced(partial, entry["t"], entry["r"], bound), waiting, partial.get("u"))
            if advanced["n"] == len(steps):
                completed.append(advanced)
            else:
                out.extend(self._take_held(advanced, waiting, steps, span, by_id, completed, watermark))
        return out

    def _hold(self, correlation: Sequence, current: _Event, indexes: set[int],
              waiting: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``waiting`` with the current event held for each later step (and the until) it matched;
        at most ``max_held_per_group`` entries, the newest kept."""
        event, time = current.raw, current.time
        for index in sorted(indexes):
            if index == UNTIL:
                entry = held.hold(held.UNTIL, correlation.until, event, time, None, _present, jsonable)
            elif index > 0:
                step = correlation.steps[index]
                entry = held.hold(index, step, event, time, current.record(step), _present, jsonable)
            else:
                continue
            waiting.append(entry)
        limit = self.limits.max_held_per_group
        if len(waiting) > limit:
            waiting.sort(key=lambda entry: entry["t"])
            self.stats.dropped_held += len(waiting) - limit
            del waiting[:-limit]
        return waiting

    def _bounded(self, partials: list[dict[str, Any]], watermark: int) -> list[dict[str, Any]]:
        """Of the partials at one step with the same bindings, those no other covers (the newest, unless
        an older one can still take an earlier event: see :func:`held.covers`); at most
        max_partials_per_group, newest kept."""
        if len(partials) <= 1:
            return partials
        alike: dict[str, list[dict[str, Any]]] = {}
        for partial in reversed(partials):  # of equal ones, the last wins
            identity = f"{partial['n']}\x1f{held.bindings_text(partial['b'])}"
            alike.setdefault(identity, []).append(partial)
        out: list[dict[str, Any]] = []
        for same in alike.values():
            if len(same) == 1:
                out.append(same[0])
                continue
            same.sort(key=lambda p: (-p["f"], max(p["l"], watermark), -p.get("u", held.NEVER), -p.get("o", held.NEVER)))
            chosen: list[dict[str, Any]] = []
            for partial in same:
                if any(held.covers(other, partial, watermark) for other in chosen):
                    continue
                if chosen:  # the newest takes the events from its last on: this one is left the older ones
                    partial = held.left_to_older(partial, max(chosen[0]["l"], watermark))
                    if partial["o"] <= max(partial["l"], watermark):
                        continue
                chosen.append(partial)
            out.extend(chosen)
        out.sort(key=lambda p: p["f"])
        limit = self.limits.max_partials_per_group
        if len(out) > limit:
            self.stats.dropped_partials += len(out) - limit
            out = out[-limit:]
        return out

    # -- thresholds and distinct counts

    def _windowed(self, correlation: Threshold | DistinctCount, current: _Event, indexes: set[int], clock: Hashable,
                  watermark: int, alerts: list[CorrelationAlert]) -> None:
        event, time = current.raw, current.time
        distinct = isinstance(correlation, DistinctCount)
        if distinct:
            value = correlation.field_extract(event)
            if not _present(value):
                return
            distinct_text = plain_json(value) or json.dumps(jsonable(value), default=str)
        values = self._group(correlation, event)
        if values is None:
            return
        key = group_key(correlation.name, values)
        state = self._store.get(key) or new_state()
        by_id = current.fields.unique_ids
        if window.is_legacy(state):
            window.upgrade(state, by_id, distinct)
        span = correlation.window_ns
        record = current.record(correlation.step)
        if distinct:  # one sighting per value; the events of an alert are known by value and time
            digest = window.digest(distinct_text)
            replay = window.sighting(digest, time) if "fh" in state else None
        else:
            event_id = record["id"]
            digest = window.event_digest(event_id, time, by_id)
            # an event without an id of its own (an ordinal) cannot be told from a replay
            replay = None if isinstance(event_id, str) and event_id.startswith("#") else digest
        if replay is not None and window.counted(state, replay):
            return  # counted already, or by the last alert: the same event delivered again (at least once)
        window.add(state, time, digest, record, distinct)
        # the newest event always stays in the window (and within ``count``): the group lives
        # until ``newest + window`` unless it completes
        total = window.prune(state, span, correlation.count)
        newest = window.newest(state)
        remembered = window.forget_fired(state, newest, span)
        live = True
        if total >= correlation.count:
            throttled = self._throttled(correlation, state, time)
            listed = window.fire(state, keep=window.fired_kept(correlation.count))
            if not throttled:
                alerts.append(self._alert(correlation, values, key, current, listed, state, total, total))
            remembered = newest + span
            live = False
        throttle_until = self._throttle_deadline(correlation, state)
        deadline = max(newest + span, throttle_until) if live else max(throttle_until, remembered)
        self._save(key, state, deadline, live or max(throttle_until, remembered) >= watermark, clock)

    # -- alerts

    def _alert(self, correlation: Correlation, values: tuple, key: str, current: _Event, records: list[dict[str, Any]],
               state: State, count: int, distinct: int) -> CorrelationAlert:
        group = dict(zip(correlation.by, values))
        suppressed = state.get("s", 0)
        state["a"] = current.time
        state["s"] = 0
        self.stats.alerts += 1
        match = Match(current.raw, {record["step"]: record for record in records}, group, count, distinct, correlation.name)
        output, fields = correlation.output_format.render(match, current.time)
        return CorrelationAlert(
            rule=correlation.name,
            kind=correlation.kind,
            priority=correlation.priority,
            output=output,
            fields=fields,
            source=correlation.source,
            tags=correlation.tags,
            group=group,
            group_key=key,
            time=current.time,
            events=tuple(ContributingEvent(r["id"], r["t"], r["sum"], r["step"]) for r in records),
            suppressed=suppressed,
            count=count,
        )


def _advanced(partial: dict[str, Any], time: int, record: dict[str, Any], bound: dict[str, Any]) -> dict[str, Any]:
    """``partial`` one step on, by the event of ``record`` at ``time``, bound so. A partial of an
    alerted chain (``"a"``, see :func:`_closed_with`) stays for events older than its ``"o"``."""
    advanced = {"n": partial["n"] + 1, "f": partial["f"], "l": time, "e": partial["e"] + [record], "b": bound}
    if "a" in partial:
        advanced["a"], advanced["o"] = 1, partial["o"]
    return advanced


def _closed_with(kept: list[dict[str, Any]], completed: list[dict[str, Any]], last: int) -> tuple[list, list]:
    """A chain alerts once: the partials grown from a completed match's first event close with
    it; of matches ended by one event, the newest. One left to older events (``"o"``: a newer
    event took its next step) before its last step (``last``: the number of steps; an older last
    step is the match's own end, moved back by held.ended_earlier) stays for them, marked
    (``"a"``) so that all it grows into stays older than that: an older step arriving late
    re-forms the chain event-time order would have completed first, from the same first event
    (the alerted match's steps from there on belong, in event time, to a chain whose first step
    may arrive later still)."""
    origins = {(match["e"][0]["id"], match["f"]) for match in completed}
    still = []
    for partial in kept:
        if (partial["e"][0]["id"], partial["f"]) not in origins:
            still.append(partial)
        elif "o" in partial and partial["n"] < last - 1:
            still.append(dict(partial, a=1))
    kept = still
    if len(completed) > 1:
        completed = _newest_per_ending(completed)
    return kept, completed


def _newest_per_ending(completed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of matches ending with the same event and bindings, the one that started last: in order,
    the older partial would have been dropped for the newer before (``_bounded``); it stays
    open only while an event older than the newer one's last may still arrive."""
    newest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for match in completed:
        last = match["e"][-1]
        ending = (last["id"], last["t"], held.bindings_text(match["b"]))
        other = newest.get(ending)
        if other is None or match["f"] >= other["f"]:
            newest[ending] = match
    return list(newest.values()) if len(newest) < len(completed) else completed


def _binds_match(step: Step, event: Any, bound: dict[str, Any]) -> bool:
    for extract, name in step.matches:
        value = extract(event)
        if not _present(value) or name not in bound or jsonable(value) != bound[name]:
            return False
    return True


def _bind(step: Step, event: Any, bound: dict[str, Any]) -> dict[str, Any]:
    if not step.binds:
        return bound
    out = dict(bound)
    for name, extract in step.binds:
        value = extract(event)
        out[name] = jsonable(value) if _present(value) else None
    return out


__all__ = ["ContributingEvent", "CorrelationAlert", "CorrelationEvaluator", "CorrelationStats"]
