"""One batch of Kafka messages -> alerts, dead letters, state changes, forwards.

This is the worker's logic without Faust, so it is unit-tested without Kafka.
The Faust agent (agents/detect.py) calls :meth:`BatchProcessor.process` for
each ``stream.take_events`` batch, then produces what it returns, stores the
alerts in OpenSearch and only then acks the batch's messages.

Syscall events meet their container's process tree here. The syscall topic
is keyed by ``container.id`` (a host event by ``host:`` + ``evt.hostname``:
pipeline/ingest/keys.py); an event whose key hashes (Kafka's default
partitioner) to another partition than the one it arrived on is not
processed here but forwarded, with that key, to the repartition topic, so one
container's events always reach the same worker and the same table partition.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterable, Iterator, Protocol, Sequence

import orjson

from pipeline import deadletter as dl
from pipeline.alerts import Alert, alert_uuid
from pipeline.record_bounds import MAX_KEY_BYTES, MAX_PART_BYTES
from pipeline.engine import EvaluationError
from pipeline.errors import EventError
from pipeline.ingest.decode import DecodeError, Refused, decode_message, json_kind
from pipeline.ingest.keys import HOST, host_key
from pipeline.json_bytes import json_bytes
from pipeline.state.containers import ContainerIndex, ContainerLimits
from pipeline.state.process_tree import ProcessTree, TreeLimits, as_produced
from pipeline.stream.regroup import behind_record, envelope, is_progress, open_envelope, open_progress, origin_of, progress_record, regrouped_here
from pipeline.stream.settings import REGROUP

log = logging.getLogger("peregrine.batch")

SYSCALL = "syscall"


@dataclass(frozen=True, slots=True)
class Message:
    """What the processor needs of a Kafka message; ``ref`` is the caller's handle
    (the Faust event), handed back with state reads and writes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ref: Any = None


class StateStore(Protocol):
    def load(self, container_id: str, ref: Any) -> bytes | None: ...
    def save(self, container_id: str, ref: Any, data: bytes | None) -> None: ...
    def delete(self, container_id: str, partition: int) -> None: ...


class DictStateStore(dict):
    """A StateStore over a dict (container id -> tree bytes), for the processor outside Faust:
    the benches and tests. The worker's is TableStore (pipeline/stream/delivery.py)."""

    def load(self, container_id: str, ref: Any) -> bytes | None:
        return self.get(container_id)

    def save(self, container_id: str, ref: Any, data: bytes | None) -> None:
        if data is None:
            self.pop(container_id, None)
        else:
            self[container_id] = data

    def delete(self, container_id: str, partition: int) -> None:
        self.pop(container_id, None)


@dataclass(slots=True)
class BatchResult:
    alerts: list[tuple[bytes | None, Alert]] = field(default_factory=list)  # (kafka key, alert)
    dead_letters: list[dl.DeadLetter] = field(default_factory=list)
    forwards: list[tuple[bytes, bytes]] = field(default_factory=list)  # repartition (key, NDJSON)
    regrouped: dict[bytes, list[bytes]] = field(default_factory=dict)  # regroup topic: group key -> envelopes
    # regroup topic: partition -> progress records (every partition, the same lines), produced after ``regrouped``
    progress: dict[int, list[bytes]] = field(default_factory=dict)
    # regroup topic: partition -> behind records (every partition, the same lines), produced before ``regrouped``
    behind: dict[int, list[bytes]] = field(default_factory=dict)
    read_until: dict[str, int] = field(default_factory=dict)  # source -> the newest time its progress records say
    # the batch's correlation state changes, sealed: written to the table (and its changelog) once
    # the batch is delivered (TableCorrelationStore.commit), dropped if it is given up (discard)
    correlation_writes: Any = None
    events: int = 0
    messages: int = 0
    enriched: int = 0
    containers: int = 0
    evicted: int = 0  # containers dropped from the state (idle or over the limit)


def ndjson_records(lines: list[bytes], max_bytes: int = MAX_PART_BYTES) -> Iterator[bytes]:
    """``lines`` joined as NDJSON records of at most ``max_bytes`` (a longer line goes alone): a
    container's repartitioned events of one batch, or a group's regrouped ones, in several."""
    start, size = 0, 0
    for end, line in enumerate(lines):
        if size and size + len(line) + 1 > max_bytes:
            yield b"\n".join(lines[start:end])
            start, size = end, 0
        size += len(line) + 1
    if start < len(lines):
        yield b"\n".join(lines[start:])


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as producers use it for keyed messages."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


class BatchProcessor:
    """Decode, enrich from per-container state, evaluate, build alerts."""

    def __init__(
        self,
        scanner: Any,  # pipeline.scan.Scanner
        source_topics: dict[str, str],
        *,
        syscall_partitions: int,
        max_message_bytes: int,
        tree_limits: TreeLimits | None = None,
        validate: Callable[[dict, str], None] | None = None,
        repartition: bool = True,
        container_limits: ContainerLimits | None = None,
        clock: Callable[[], float] | None = None,
        tree_cache: int = 10_000,
    ) -> None:
        self.scanner = scanner
        self.source_topics = source_topics
        self.partitions = syscall_partitions
        self.max_message_bytes = max_message_bytes
        self.tree_limits = tree_limits or TreeLimits()
        self.validate = validate
        # source -> the validator's fast check (pipeline/fields/schema.py's fast_check), if it has one
        self._fast_check: Callable[[str], Callable[[dict], bool] | None] | None = getattr(validate, "fast_check", None)
        self.repartition = repartition
        self._partition_cache: dict[str, int] = {}
        self.containers = ContainerIndex(container_limits, clock) if clock is not None else ContainerIndex(container_limits)
        # container -> (the bytes the store holds, that tree decoded): a tree is decoded again only
        # when the stored bytes are not the ones this worker last read or wrote (e.g. after a rebalance)
        self._trees: dict[str, tuple[bytes | None, ProcessTree]] = {}
        self.tree_cache = tree_cache
        self.correlation_store: Any = None  # see use_correlation_store
        # the correlator when some correlations are regrouped (pipeline/stream/regroup.py)
        correlator = getattr(scanner, "correlator", None)
        self._regrouping = correlator if correlator is not None and correlator.regroup else None
        # what an envelope read back from the regroup topic may name (the rules may have changed since)
        # (name -> the source it reads: an envelope's event must be of that source)
        self._regrouped_sources = {c.name: c.source for c in correlator.correlations if c.name in correlator.regroup} \
            if correlator is not None else {}
        self._loaded_names = frozenset(c.name for c in correlator.correlations) if correlator is not None else frozenset()
        # the sources whose input partitions report their progress to every regroup partition
        self._progress_sources = self._regrouping.regroup_sources if self._regrouping is not None else frozenset()

    def behind_records(self, result: BatchResult, unread: Iterable[tuple[str, int]]) -> None:
        """Once a batch that read a source with regrouped correlations is processed: a behind
        record for each of ``unread`` (input topic partitions this worker owns and has not read
        to their end) of such a source, for every regroup partition, produced before the batch's
        forwards (pipeline/stream/regroup.py)."""
        until = result.read_until
        lines = [behind_record(source, origin_of(topic, partition), until[source]) for topic, partition in unread
                 if (source := self.source_topics.get(topic)) in until]
        if lines:
            result.behind = {partition: lines for partition in range(self.partitions)}

    def partition_of(self, container_id: str) -> int:
        found = self._partition_cache.get(container_id)
        if found is None:
            if len(self._partition_cache) > 200_000:
                self._partition_cache.clear()
            found = self._partition_cache[container_id] = kafka_partition(container_id.encode(), self.partitions)
        return found

    def process(self, messages: Sequence[Message], store: StateStore | None) -> BatchResult:
        """Events are evaluated as they are decoded (a batch's events are never all held at
        once); each container's tree is loaded at its first event and written once, at the
        end, if it changed."""
        steps = self.steps(messages, store)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result = done.value
                if self.correlation_store is not None:
                    self.correlation_store.commit(result.correlation_writes)  # nothing to deliver first
                return result

    def steps(self, messages: Sequence[Message], store: StateStore | None, every: int = 32) -> Generator[None, None, BatchResult]:
        """:meth:`process` in steps: yields after every ``every`` messages, so the worker's event
        loop can run in between (Faust's fetch loop keeps the consumer fetching while a large
        batch is processed); returns the BatchResult. Trees are still written once, at the end;
        the correlation state's changes are sealed in ``correlation_writes``, for the caller to
        commit once the batch's alerts are delivered (the worker's delivery does)."""
        result = BatchResult(messages=len(messages))
        # container -> [tree, stored bytes, changed, last message, kafka key]
        open_trees: dict[str, list] = {}
        forwards: dict[str, list[bytes]] = defaultdict(list)
        regrouped: list[tuple[Message, list, _Refusals]] = []
        progress: dict[str, list] = {}  # origin -> [source, its newest event time in the batch]
        progress_sources = self._progress_sources
        validate = self.validate
        fast_check = self._fast_check
        # bound once a batch: what every syscall event calls (a scanner's attributes do not change
        # during a batch; a test's fake scanner is bound the same way)
        scan = self.scanner.scan_event
        regrouping = self._regrouping
        repartition = self.repartition
        writes = self.correlation_store.begin() if self.correlation_store is not None else None
        for position, message in enumerate(messages, start=1):
            if position % every == 0:
                yield
            correlation_store = self.correlation_store
            if correlation_store is not None:
                # the groups' state lives in this message's partition; bound once per message, after
                # the yield (the other agent's batch may have bound its own meanwhile)
                correlation_store.bind(message.ref, writes)
            source = self.source_topics.get(message.topic)
            if source is None:
                result.dead_letters.append(self._dead(message, dl.UNDECODABLE, f"no source for topic {message.topic}"))
                continue
            try:
                events = decode_message(message.value, self.max_message_bytes)
            except DecodeError as error:
                result.dead_letters.append(self._dead(message, error.reason, error.detail))
                continue
            refusals = _Refusals(result, message)
            if source == REGROUP:
                refusals.items = len(events)
                regrouped.append((message, events, refusals))  # evaluated after the loop, in event time
                continue
            if source == "aws_cloudtrail":
                events = _expand_records(events)
            refusals.items = len(events)
            result.events += len(events)
            tracked = source in progress_sources  # once a message: nothing per event on the other sources
            if tracked:
                self._regrouping.progress_time = -1
            # the validator's own fast check, when it offers one (pipeline/fields/schema.py): an
            # event it passes fits, and the validator is called only for the others
            check = fast_check(source) if fast_check is not None else None
            # a collector's message is mostly one container's events: its partition check and its
            # tree are looked up when the container changes, not for every event
            current_cid: str | None = None
            state: list | None = None
            for index, event in enumerate(events):
                if event.__class__ is Refused:  # an item of the batch that is not an event
                    result.events -= 1
                    refusals.add(dl.UNDECODABLE, event.detail, index=index, original=event.original)
                    continue
                if validate is not None and (check is None or not check(event)):
                    try:
                        validate(event, source)
                    except EventError as error:
                        refusals.add(dl.SCHEMA, str(error), event, index)
                        continue
                if source != SYSCALL:
                    self._evaluate(result, refusals, index, event, None, source, _natural_key(event, source))
                    continue
                cid = event.get("container.id")
                if cid.__class__ is not str or not cid or cid == HOST:
                    cid = host_key(event)  # one tree and one partition per node's host processes
                if cid != current_cid:
                    current_cid = cid
                    if repartition and self.partition_of(cid) != message.partition:
                        state = None  # another partition's container: forwarded
                    else:
                        state = open_trees.get(cid)
                        if state is None:
                            tree, stored = self._tree(cid, message.ref, store)
                            state = open_trees[cid] = [tree, stored, False, message, cid.encode()]
                        else:
                            state[3] = message
                if state is None:
                    try:
                        line = orjson.dumps(event)
                    except TypeError as error:  # nested deeper than orjson writes: pipeline/json_bytes.py
                        refusals.add(dl.UNDECODABLE, f"cannot be forwarded to its container's partition: {error}", event, index)
                        continue
                    if len(line) > MAX_PART_BYTES:  # could not be produced: it would stop the worker
                        refusals.add(dl.OVERSIZED, f"event of {len(line)} bytes, over the {MAX_PART_BYTES} a repartitioned "
                                     "record may hold", event, index)
                    else:
                        forwards[cid].append(line)
                    continue
                tree = state[0]
                # enriched in place (update reads no field enrich adds, but proc.ppid, which enrich takes
                # from the tree's own entry); ``undo`` gives the event back as produced for alert ids
                # and dead letters
                undo = tree.enrich_in_place(event)
                if undo is not None:
                    result.enriched += 1
                if tree.update(event):
                    state[2] = True
                # _evaluate's steps, inline: this runs for every syscall event
                try:
                    alerts = scan(event, SYSCALL)
                except Exception as error:  # noqa: BLE001 - nothing a producer sends may stop the worker
                    self._unevaluated(refusals, error, event, undo, index)
                    continue
                if regrouping is not None and regrouping.routes:
                    self._regroup(result, refusals, regrouping.routes, event, undo, SYSCALL, index)
                if alerts:
                    self._add_alerts(result, alerts, event, undo, state[4])
            refusals.close()
            if tracked and self._regrouping.progress_time >= 0:
                self._progressed(progress, message, source, self._regrouping.progress_time)
        if regrouped:
            yield from self._regrouped(result, regrouped, every * 32, writes)
        if progress:
            lines = [progress_record(source, origin, time) for origin, (source, time) in progress.items()]
            result.progress = {partition: lines for partition in range(self.partitions)}
            for source, time in progress.values():
                if time > result.read_until.get(source, -1):
                    result.read_until[source] = time
        if self.correlation_store is not None:
            # each group this batch changed, logged once, after the batch's delivery
            result.correlation_writes = self.correlation_store.seal(writes)
        for cid, lines in forwards.items():
            key = cid.encode()
            result.forwards.extend((key, record) for record in ndjson_records(lines))
        result.containers = len(open_trees)
        for cid, (tree, stored, changed, last, _) in open_trees.items():
            tree.forget_ancestry()  # a batch's memo: the cached trees stay as small as their processes
            if changed and store is not None:
                tree.expire()
                stored = tree.to_bytes()
                if len(stored) > self.tree_limits.max_bytes:
                    stored = tree.shrink(self.tree_limits.max_bytes)
                store.save(cid, last.ref, stored)
            self._remember(cid, stored, tree)
            self.containers.touch(cid, last.partition)
        if store is not None and open_trees:
            for gone in self.containers.evictions():
                store.delete(gone.container_id, gone.partition)
                self._trees.pop(gone.container_id, None)
                result.evicted += 1
        return result

    def _tree(self, cid: str, ref: Any, store: StateStore | None) -> tuple[ProcessTree, bytes | None]:
        stored = store.load(cid, ref) if store is not None else None
        cached = self._trees.get(cid)
        if cached is not None and stored is not None and (cached[0] is stored or cached[0] == stored):
            return cached[1], stored
        return ProcessTree.from_bytes(stored, self.tree_limits), stored

    def _remember(self, cid: str, stored: bytes | None, tree: ProcessTree) -> None:
        trees = self._trees
        if cid in trees:
            del trees[cid]
        elif len(trees) >= self.tree_cache:
            del trees[next(iter(trees))]
        if stored is not None:
            trees[cid] = (stored, tree)

    def forget_partitions(self, keep: set[int]) -> None:
        """The worker now owns only ``keep``: forget (not delete) the others' containers."""
        for cid in self.containers.retain(keep):
            self._trees.pop(cid, None)

    def track(self, container_id: str, partition: int) -> None:
        """A container found in the state (recovered from the changelog): its idle time starts now."""
        if container_id not in self.containers:
            self.containers.touch(container_id, partition)

    def use_correlation_store(self, store: Any) -> None:
        """Correlation state in ``store`` (a TableCorrelationStore), bound to each event's
        message before it is evaluated; the groups it already holds are indexed."""
        correlator = getattr(self.scanner, "correlator", None)
        if correlator is None:
            return
        self.correlation_store = store
        correlator.store = store
        correlator.reindex()

    def _evaluate(self, result: BatchResult, refusals: "_Refusals", index: int, event: dict, undo: list | None, source: str,
                  key: bytes | None) -> None:
        """Alerts of ``event`` (enriched by the tree when ``undo`` is set: as_produced(event, undo)
        is the event as sent, for alert ids and dead letters). :meth:`steps` runs the same steps
        inline for a syscall event."""
        try:
            alerts = self.scanner.scan_event(event, source)
        except Exception as error:  # noqa: BLE001 - nothing a producer sends may stop the worker
            self._unevaluated(refusals, error, event, undo, index)
            return
        regrouping = self._regrouping
        if regrouping is not None and regrouping.routes:
            self._regroup(result, refusals, regrouping.routes, event, undo, source, index)
        if alerts:
            self._add_alerts(result, alerts, event, undo, key)

    @staticmethod
    def _unevaluated(refusals: "_Refusals", error: Exception, event: dict, undo: list | None, index: int) -> None:
        """The event's evaluation raised: a dead letter of the event as produced."""
        detail = str(error) if isinstance(error, (EvaluationError, EventError)) else f"{type(error).__name__}: {error}"
        refusals.add(dl.EVALUATION_ERROR, detail, as_produced(event, undo), index)

    def _regroup(self, result: BatchResult, refusals: "_Refusals", routes: list[tuple[str, str]], event: dict,
                 undo: list | None, source: str, index: int) -> None:
        """The event to its correlation groups' regroup partitions (:meth:`_route`)."""
        try:
            message = refusals.message
            self._route(result, routes, event, source, origin_of(message.topic, message.partition))
        except TypeError as error:  # nested deeper than orjson writes: its rules ran, its correlations cannot
            refusals.add(dl.UNDECODABLE, f"cannot be sent to its correlation group's partition: {error}",
                         as_produced(event, undo), index)

    @staticmethod
    def _add_alerts(result: BatchResult, alerts: list[Alert], event: dict, undo: list | None, key: bytes | None) -> None:
        original = as_produced(event, undo)
        for alert in alerts:
            if undo is not None and "corr.type" not in alert.output_fields:
                # the id is over the event as produced, so a replay with other state gives the same id
                # (a correlation's id is over its contributing events already)
                alert = replace(alert, uuid=alert_uuid(original, alert.rule))
            result.alerts.append((key, alert))

    @staticmethod
    def _progressed(progress: dict[str, list], message: Message, source: str, time: int) -> None:
        """The message's input partition has read events of ``source`` up to ``time``: its
        progress record for this batch says the newest such time (the events the correlator took,
        timed and not from the future). Every regroup partition gets it, after the batch's
        forwards (pipeline/stream/delivery.py), so a regroup clock hears from every input
        partition that is read, whether or not it forwards anything."""
        origin = origin_of(message.topic, message.partition)
        known = progress.get(origin)
        if known is None:
            progress[origin] = [source, time]
        elif time > known[1]:
            known[1] = time

    @staticmethod
    def _route(result: BatchResult, routes: list[tuple[str, str]], event: dict, source: str, origin: str | None = None) -> None:
        """The event to the regroup topic, once per group key, with the correlations it is for
        and its origin (the topic partition it was read from: the regroup partition's clock
        keeps each origin's progress). The Kafka key only picks the group's partition: a long
        group key (long ``by`` values) goes as its digest."""
        names: dict[str, list[str]] = {}
        for key, name in routes:
            names.setdefault(key, []).append(name)
        for key, correlations in names.items():
            line = envelope(source, correlations, event, origin)
            if len(line) <= MAX_PART_BYTES:  # a longer one could not be produced (its rules ran here already)
                kafka_key = key.encode()
                if len(kafka_key) > MAX_KEY_BYTES:
                    kafka_key = b"sha256:" + hashlib.sha256(kafka_key).hexdigest().encode()
                result.regrouped.setdefault(kafka_key, []).append(line)

    def _regrouped(self, result: BatchResult, messages: list[tuple[Message, list, "_Refusals"]],
                   every: int, writes: Any = None) -> Generator[None, None, None]:
        """The regroup topic's messages of a batch: their events, for the correlations they were
        sent for, in their groups' partitions, in event time. A worker forwards a batch's events
        group by group, so two groups sharing a regroup partition arrive one after the other:
        taken in that order, the group with newer events moved the partition's clock and made
        the other's events late. Across batches (and workers) the evaluator's merged clock
        keeps each envelope's origin apart (pipeline/correlation/evaluate.py). Their rules ran
        when they first arrived. An envelope for a correlation not regrouped here is a dead
        letter (the others it names are evaluated). A progress record (an input partition's
        newest event time, no event) takes its place in that order too: after the events of
        its origin up to its time, which were produced before it; it moves the origin's time
        on the clock and is neither an event nor a dead letter. Yields after every ``every``
        items."""
        correlator = self.scanner.correlator
        opened: list[tuple[int, int, Message, _Refusals, int, dict, str, list[str] | None, dict | None, str | None]] = []
        for message, envelopes, refusals in messages:
            for index, item in enumerate(envelopes):
                if item.__class__ is Refused:
                    refusals.add(dl.UNDECODABLE, item.detail, index=index, original=item.original)
                    continue
                if is_progress(item):  # an input partition's progress: no event (names None below)
                    try:
                        source, origin, time, behind = open_progress(item)
                    except ValueError as error:
                        refusals.add(dl.SCHEMA, str(error), item, index)
                        continue
                    # a behind record first (as untimed): it only makes the clock wait for its origin
                    opened.append((-1 if behind else time, len(opened), message, refusals, index, item, source, None,
                                   time if behind else None, origin))
                    continue
                try:
                    source, names, event, origin = open_envelope(item)
                except ValueError as error:
                    refusals.add(dl.SCHEMA, str(error), item, index)
                    continue
                names, unknown = regrouped_here(names, source, self._regrouped_sources, self._loaded_names)
                if unknown is not None:
                    refusals.add(dl.UNKNOWN_CORRELATION, unknown, item, index)
                    if not names:
                        continue
                time = correlator.event_time(event, source) if correlator is not None else -1
                opened.append((time, len(opened), message, refusals, index, item, source, names, event, origin))
        opened.sort(key=_in_time)
        store = self.correlation_store
        for position, (time, _, message, refusals, index, item, source, names, event, origin) in enumerate(opened, start=1):
            if position % every == 0:
                yield
            if store is not None:
                store.bind(message.ref, writes)  # the group's partition: its message's
            try:
                if names is None:  # a progress record, or a behind record (its time in ``event``)
                    if correlator is not None:
                        if event is None:
                            correlator.progress(source, origin, time)
                        else:
                            correlator.behind(source, origin, event)
                    continue
                alerts = self.scanner.scan_regrouped(event, source, names, origin)
            except Exception as error:  # noqa: BLE001 - nothing a producer sends may stop the worker
                refusals.add(dl.EVALUATION_ERROR, f"{type(error).__name__}: {error}", item, index)
                continue
            result.alerts.extend((message.key, alert) for alert in alerts)
        for _, _, refusals in messages:
            refusals.close()

    @staticmethod
    def _dead(message: Message, reason: str, detail: str, event: Any = None, index: int | None = None,
              original: bytes | None = None) -> dl.DeadLetter:
        """A dead letter of ``message``: of its ``original`` bytes when given, else of ``event``
        written again, else of the whole message."""
        if original is None:
            original = dl.event_bytes(event) if event is not None else (message.value or b"")
        return dl.DeadLetter(reason, detail, message.topic, message.partition, message.offset, message.key, original, index)


MAX_DEAD_LETTERS_PER_MESSAGE = 100


def _in_time(entry: tuple) -> tuple[int, int]:
    """An opened envelope's order: its event's time (-1 untimed: first, the correlations ignore
    it), then its place in the batch."""
    return entry[0], entry[1]


class _Refusals:
    """The dead letters of one message's events: each of the first
    :data:`MAX_DEAD_LETTERS_PER_MESSAGE` on its own; past them, one more holding the whole
    message and how many more were refused, and why. A 1 MB message of ``{}`` lines made
    333K dead letters (96 MB on the dead-letter topic) and as many allocations."""

    __slots__ = ("result", "message", "count", "suppressed", "items", "_lines")

    def __init__(self, result: BatchResult, message: Message) -> None:
        self.result = result
        self.message = message
        self.count = 0
        self.suppressed: dict[str, int] = {}
        self.items = -1  # how many items the message was read as (events, refusals, expanded records)
        self._lines: list[bytes] | None = None

    def add(self, reason: str, detail: str, event: Any = None, index: int | None = None, original: bytes | None = None) -> None:
        self.count += 1
        if self.count > MAX_DEAD_LETTERS_PER_MESSAGE:
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
            return
        if original is None and event is not None and index is not None:
            original = self._line(index)
        self.result.dead_letters.append(BatchProcessor._dead(self.message, reason, detail, event, index, original))

    def _line(self, index: int) -> bytes | None:
        """The event's own bytes as produced, when the message is NDJSON with one object a line
        (its ``index``-th non-blank line); None otherwise (an array, a pretty-printed document,
        expanded CloudTrail records): the event is then written again."""
        lines = self._lines
        if lines is None:
            value = self.message.value or b""
            lines = self._lines = [line for line in value.split(b"\n") if line and not line.isspace()]
        if len(lines) != self.items or index >= len(lines):
            return None
        line = lines[index].strip()
        return line if line[:1] == b"{" else None

    def close(self) -> None:
        if not self.suppressed:
            return
        message = self.message
        more = sum(self.suppressed.values())
        reason = max(self.suppressed, key=self.suppressed.__getitem__)
        why = ", ".join(f"{count} {name}" for name, count in sorted(self.suppressed.items()))
        detail = (f"{more} more events of this message were refused ({why}); past {MAX_DEAD_LETTERS_PER_MESSAGE} dead letters "
                  "a message, the message is set aside whole, here")
        self.result.dead_letters.append(BatchProcessor._dead(message, reason, detail))


def _expand_records(events: list) -> list:
    """CloudTrail's ``{"Records": [...]}`` delivery format -> its records; a record that is
    not an object is a :class:`Refused` in its place."""
    if not any(e.__class__ is dict and "Records" in e and "eventName" not in e for e in events):
        return events
    out: list = []
    for event in events:
        records = event.get("Records") if event.__class__ is dict else None
        if isinstance(records, list) and "eventName" not in event:
            out.extend(r if isinstance(r, dict) else
                       Refused(f"Records[{n}] is a {json_kind(r)}, not an object",
                               json_bytes(r)) for n, r in enumerate(records))
        else:
            out.append(event)
    return out


def _natural_key(event: dict, source: str) -> bytes | None:
    """The alert's Kafka key: the namespace (else the audit id), the account id; None when
    absent, not a scalar, or longer than a real one can be (a key is part of a record, which
    Kafka bounds). An object or a list is no key: str() of one nested a thousand deep raised
    RecursionError out of the batch (the CloudTrail schema leaves recipientAccountId open)."""
    if source == "k8s_audit":
        ref = event.get("objectRef")
        if isinstance(ref, dict) and ref.get("namespace") and not isinstance(ref["namespace"], (dict, list)):
            namespace = str(ref["namespace"]).encode()
            if len(namespace) <= MAX_KEY_BYTES:
                return namespace
        audit_id = event.get("auditID")
        key = str(audit_id).encode() if audit_id and not isinstance(audit_id, (dict, list)) else None
    elif source == "aws_cloudtrail":
        account = event.get("recipientAccountId")
        key = str(account).encode() if account and not isinstance(account, (dict, list)) else None
    else:
        return None
    return key if key is not None and len(key) <= MAX_KEY_BYTES else None
