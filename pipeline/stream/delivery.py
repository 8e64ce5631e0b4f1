"""One batch from Faust through detection to Kafka and OpenSearch, then acked.

The order is the delivery guarantee:

1. every message of the batch is *held* (one more reference on it), so
   Faust's ``take_events`` cannot ack it behind our back, even when this
   coroutine is cancelled or the worker is stopped mid-batch;
2. the batch is processed (decode, process-tree state, rules);
3. repartitioned and regrouped events, then the regroup topic's progress
   records (pipeline/stream/regroup.py), dead letters and alerts are
   produced and their delivery awaited (acks=all);
4. the alerts are written to OpenSearch; ``flush`` retries until OpenSearch
   accepts them (backpressure: no new batch is taken meanwhile);
5. the batch's correlation state changes are written to their table (and so
   its changelog): never before its alerts are stored, or a replay of the
   batch would find its matches already made and give no alert
   (pipeline/correlation/table.py); then the delivery waits until Kafka has
   acknowledged every changelog record of the tables written so far (Faust's
   own flush before a commit can give up early:
   pipeline/state/changelog_acks.py);
6. only then are the messages released, so their offsets can be committed.

Steps 3-5 of one batch overlap step 2 of the next: the agent processes batch
N+1 while batch N waits for Kafka's and OpenSearch's acks, so the worker's
core is not idle during those round trips. At most one batch per agent is
delivering; the next waits for it before its own delivery starts, so alerts
keep their order, and a slow OpenSearch stops the agent after one batch
(backpressure), never a growing queue.

A crash anywhere before 6 leaves the offsets uncommitted: the batch is
processed again after a restart, and OpenSearch's ``create`` with the alert's
deterministic id keeps one copy of each alert. Nothing here lets an
exception escape (an exception out of a Faust agent kills the agent): a
failure is logged, dead-lettered or retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import weakref
from typing import Any, Callable

import orjson

from pipeline import deadletter as dl
from pipeline import metrics
from pipeline.alerts.bounds import for_kafka
from pipeline.alerts.ocsf import ocsf_json
from pipeline.errors import ConfigError
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import AlertSink, template_for_prefix
from pipeline.state.containers import ContainerLimits
from pipeline.state.process_tree import TreeLimits
from pipeline.state.table_partition import PartitionEvent
from pipeline.stream.backlog import Backlog
from pipeline.stream.batch import BatchProcessor, Message, ndjson_records
from pipeline.stream.credentials import opensearch_options
from pipeline.stream.regroup import regrouped_correlations
from pipeline.stream.settings import PipelineSettings

log = logging.getLogger("peregrine.worker")
INDEX_REJECTED = "index_rejected"
PROGRESS_KEY = b"progress"  # the key of the regroup topic's progress records (their partition is given, not hashed)


def worker_rules_paths(settings: PipelineSettings) -> list[str]:
    """PEREGRINE_RULES, else the repo's rules/*_rules.yaml and its correlations
    (rules/peregrine_correlations.yaml), as ``peregrine scan`` loads them."""
    if settings.rules:
        return [p for p in settings.rules.split(os.pathsep) if p]
    from pipeline.cli.scan import default_rules_paths

    return default_rules_paths()


def correlation_limits(settings: PipelineSettings) -> Any:
    """PEREGRINE_CORRELATION_LIMITS (``max_window=1h,throttle=10m,max_groups=50000``) -> CorrelationLimits."""
    from pipeline.correlation import CorrelationLimits

    text = settings.correlation_limits.strip()
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"PEREGRINE_CORRELATION_LIMITS: {item!r} is not name=value (e.g. max_window=1h,throttle=10m)")
        values[name.strip()] = value.strip()
    try:
        return CorrelationLimits.from_settings(values)
    except ConfigError as error:
        raise ConfigError(f"PEREGRINE_CORRELATION_LIMITS: {error}") from None


def load_worker_correlations(files: list[str], ruleset: Any, registry_for: Callable[[str], Any], limits: Any = None) -> tuple:
    """The ``- correlation:`` items of the rules files (pipeline/correlation), as ``peregrine scan`` loads them."""
    from pipeline.correlation.parse import CorrelationLoader

    loader = CorrelationLoader(limits=limits, registry_for=registry_for)
    for path in files:
        loader.add_file(path)
    return loader.load(ruleset) if loader.items else ()


def build_processor(settings: PipelineSettings) -> BatchProcessor:
    from pipeline.rules.loader import RulesLoader
    from pipeline.scan import Scanner

    from pipeline.fields import registry_for

    files = worker_rules_paths(settings)
    limits = correlation_limits(settings)
    loader = RulesLoader(registry_for=registry_for)
    for path in files:
        loader.add_file(path)
    ruleset = loader.load()
    for warning in ruleset.warnings:
        if warning.shown:
            log.warning("rules: %s", warning)
    correlations = load_worker_correlations(files, ruleset, registry_for, limits)
    live_audit = None
    if settings.config_audit:
        from pipeline.audit.live import LiveAudit

        live_audit = LiveAudit.from_config_file(settings.audit_config or None,
                                                observe=lambda outcome: metrics.LIVE_AUDIT.labels(outcome).inc())
    scanner = Scanner(ruleset, registry_for=registry_for, rule_matching=settings.rule_matching, source="syscall",
                      detect_source=lambda e: None, live_audit=live_audit, correlations=correlations, correlation_limits=limits,
                      regroup=regrouped_correlations(correlations, settings.partitions))
    validate = None
    try:
        from pipeline.fields.schema import validate_event as validate  # type: ignore[no-redef]
    except ImportError:
        log.warning("pipeline.fields.schema is not available: events are not schema-checked")
    return BatchProcessor(
        scanner,
        settings.source_topics(),
        syscall_partitions=settings.partitions,
        max_message_bytes=settings.max_message_bytes,
        tree_limits=TreeLimits(settings.max_processes_per_container, int(settings.exited_ttl_s * 1e9)),
        validate=validate,
        container_limits=ContainerLimits(settings.max_containers, settings.idle_container_ttl_s),
    )


def owned_partitions(table: Any) -> frozenset[int]:
    """The partitions of a Faust table this worker is active for."""
    topic = table.changelog_topic.get_topic_name()
    return frozenset(tp.partition for tp in table.app.assignor.assigned_actives() if tp.topic == topic)


def correlation_store(table: Any, partitions: int) -> Any:
    """The correlation evaluator's store over the worker's correlation table."""
    from pipeline.correlation.table import TableCorrelationStore

    return TableCorrelationStore(table, partitions=partitions, topic=table.changelog_topic.get_topic_name(),
                                 owned=lambda: owned_partitions(table))


class TableStore:
    """Process trees in a Faust table. Faust picks a table key's partition (changelog
    and RocksDB) from the *current event*; reads and writes here run with the
    current event set to a message of the container's own partition."""

    def __init__(self, table: Any) -> None:
        self.table = table
        from faust.streams import _current_event

        self._var: contextvars.ContextVar = _current_event

    def _with(self, ref: Any, fn: Callable[[], Any]) -> Any:
        token = self._var.set(weakref.ref(ref))
        try:
            return fn()
        finally:
            self._var.reset(token)

    def load(self, container_id: str, ref: Any) -> bytes | None:
        value = self._with(ref, lambda: self.table.get(container_id.encode()))
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict):  # a codec decoded the JSON for us
            return orjson.dumps(value)
        log.warning("process tree of %s has an unexpected type %s; starting it afresh", container_id, type(value).__name__)
        return None

    def save(self, container_id: str, ref: Any, data: bytes | None) -> None:
        def write() -> None:
            if data is None:
                self.table.pop(container_id.encode(), None)
            else:
                self.table[container_id.encode()] = data

        self._with(ref, write)

    def delete(self, container_id: str, partition: int) -> None:
        """Drop a container's tree (a tombstone in its changelog partition)."""
        self.save(container_id, PartitionEvent(partition, self.table.changelog_topic.get_topic_name()), None)

    def owned_partitions(self) -> frozenset[int]:
        """The table partitions this worker is active for."""
        return owned_partitions(self.table)

    def containers(self) -> list[str]:
        """Container ids in the table (for the memory store this includes standby partitions)."""
        return [key.decode(errors="replace") if isinstance(key, bytes) else str(key) for key in list(self.table.keys())]


def _alert_template() -> dict:
    from pipeline.stack.provision import load_template
    from pipeline.stack.settings import StackSettings

    return load_template(StackSettings.from_env().alerts_template_path)


class BatchDelivery:
    def __init__(
        self,
        settings: PipelineSettings,
        processor: BatchProcessor,
        *,
        alerts: Any,
        deadletters: Any,
        repartition: Any,
        regroup: Any = None,
        ocsf: Any = None,
        table: Any = None,
        correlation_table: Any = None,
        topic_factory: Callable[[str], Any] | None = None,
        backlog: Backlog | None = None,
        consumer: Callable[[], Any] | None = None,
    ) -> None:
        """``backlog`` and ``consumer`` (the worker's Faust consumer, when asked): which owned
        input partitions have records not read yet, for the regroup clocks' behind records."""
        self.settings = settings
        self.backlog = backlog
        self._consumer = consumer
        self.processor = processor
        self.alerts = alerts
        self.deadletters = deadletters
        self.repartition = repartition
        self.regroup = regroup
        self.ocsf = ocsf
        self.store = TableStore(table) if table is not None else None
        # the tables whose changelog records are awaited before a batch is released (step 5)
        self._changelogs = [t for t in (table, correlation_table) if hasattr(t, "unacked_changelog")]
        self.topic_factory = topic_factory
        self._priority_topics: dict[str, Any] = {}
        template_name, template = template_for_prefix(_alert_template(), settings.index_prefix)
        self.sink = AlertSink(
            settings.opensearch_url, settings.index_prefix, backoff_max_s=settings.opensearch_retry_max_s,
            on_retry=lambda message: metrics.OPENSEARCH_RETRIES.inc(),
            template=template,
            template_name=template_name,
            auth=opensearch_options(settings),
        )
        self.batches = 0
        self.last_batch_at: float | None = None
        self.waiting_on: str | None = None
        self.dead_letter_counts = dl.DeadLetterCounts()
        # the syscall and the other-sources agents share this delivery and its sink: one batch's
        # alerts are added and flushed at a time, or a batch whose alerts went out in the other
        # agent's still-running flush would find the sink empty and be acked before they are stored
        self._delivering = asyncio.Lock()
        self._in_flight: dict[str, asyncio.Future] = {}  # lane (agent) -> its batch being delivered
        self._in_flight_messages: dict[str, list] = {}  # lane -> that batch's Faust messages
        # messages a stop or a revoke gave up (pipeline/stream/bounded_stop.py): never delivered nor acked
        self._abandoned: weakref.WeakSet = weakref.WeakSet()
        self._processing: dict[asyncio.Future, list] = {}  # set when its batch's processing ends -> the batch
        self._owned: frozenset[int] | None = None
        # correlation state (pipeline/correlation) in its own changelog-backed table
        self.correlator = getattr(processor.scanner, "correlator", None)
        self.correlation_store = None
        if correlation_table is not None and self.correlator is not None:
            self.correlation_store = correlation_store(correlation_table, settings.partitions)
        self._correlations_owned: frozenset[int] | None = None

    def health(self) -> dict:
        return {
            "status": "waiting" if self.waiting_on else "ok",
            "waiting_on": self.waiting_on,
            "batches": self.batches,
            "seconds_since_last_batch": None if self.last_batch_at is None else round(time.monotonic() - self.last_batch_at, 3),
            "dead_letters": dict(self.dead_letter_counts),
            "alerts_stored": self.sink.stored,
            "alerts_already_stored": self.sink.duplicates,
            "correlation_groups": self.correlator.open_groups if self.correlator is not None else 0,
        }

    async def run(self, batch: list, stateful: bool = True, lane: str = "syscall") -> None:
        """Process ``batch``, then start its delivery once the lane's previous batch is
        delivered, and return: the messages are released when their delivery ends."""
        if self._abandoned:  # taken before a revoke gave them up: their partitions are read again
            batch = [event for event in batch if event.message not in self._abandoned]
            if not batch:
                return
        started = time.perf_counter()
        for event in batch:
            event.message.incref()  # hold: see the module docstring
        try:
            messages = [
                Message(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value, e)
                for e in batch
            ]
            processed = asyncio.get_running_loop().create_future()
            self._processing[processed] = batch
            try:
                if stateful and self.store is not None:
                    self._follow_assignment()
                if self.correlation_store is not None:
                    self._follow_correlation_assignment()
                steps = self.processor.steps(messages, self.store if stateful else None)
                while True:
                    try:
                        next(steps)
                    except StopIteration as done:
                        result = done.value
                        break
                    await asyncio.sleep(0)  # let Faust's fetch loop run: the next messages arrive meanwhile
                if self.backlog is not None:
                    self._note_backlog(messages, result)
            except Exception:  # noqa: BLE001 - a bug must not ack; crash loudly instead of losing events
                log.exception("batch processing failed; the worker stops without acking this batch")
                os._exit(70)
            finally:
                del self._processing[processed]
                processed.set_result(None)
            previous = self._in_flight.get(lane)
            if previous is not None:
                await asyncio.wait([previous])  # cancelled when abandoned: that is not this batch's cancellation
        except asyncio.CancelledError:
            raise  # held messages stay unacked: processed again after the restart
        if self._abandoned and all(event.message in self._abandoned for event in batch):
            self._discard_state(result)
            return  # given up meanwhile: never delivered, its messages stay unacked
        self._in_flight[lane] = asyncio.ensure_future(self._deliver_then_release(batch, result, started, lane))
        self._in_flight_messages[lane] = [event.message for event in batch]

    async def _deliver_then_release(self, batch: list, result: Any, started: float, lane: str) -> None:
        try:
            async with self._delivering:
                try:
                    await self._deliver(result)
                except asyncio.CancelledError:
                    # still holding the sink: what it holds is this batch's alerts, which whoever
                    # processes the batch again stores (the next batch's bulk must not carry them)
                    self.sink.discard()
                    self._discard_state(result)
                    raise
                finally:
                    self.waiting_on = None  # cancelled: the next delivery says what it waits on
                if self.correlation_store is not None:
                    self.correlation_store.commit(result.correlation_writes)  # the alerts are stored: step 5
            for table in self._changelogs:
                await self._wait_delivered(table.unacked_changelog())
        except asyncio.CancelledError:
            raise  # drain() or abandon() gave up on it: unacked, processed again by the partitions' next owner
        except Exception:  # noqa: BLE001 - nobody awaits this task in time to see it: crash loudly, unacked
            log.exception("delivering a batch failed; the worker stops without acking it")
            os._exit(72)
        for event in batch:
            event.ack()  # release our hold; take_events's own ack then commits
        self._in_flight_messages.pop(lane, None)  # the lane's next batch is set only once this one is done
        self.batches += 1
        self.last_batch_at = time.monotonic()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_MESSAGES.observe(len(batch))

    async def abandon(self, messages: Any) -> str | None:
        """A stop or a revoke gives ``messages`` up (pipeline/stream/bounded_stop.py): the
        deliveries in flight whose messages are all among them are cancelled (unacked, their
        partitions are read again by their next owner), and a batch still to be delivered, or
        an event still to be taken, that holds them is dropped (run). A delivery that also
        holds other messages goes on. Returns what the deliveries were waiting on."""
        waiting_on = self.waiting_on
        self._abandoned.update(messages)
        # a batch being processed first ends its state changes (tables), as under Faust's own
        # wait: its partitions' stores must not be written once they have changed hands
        busy = [done for done, batch in self._processing.items() if any(e.message in self._abandoned for e in batch)]
        if busy:
            await asyncio.wait(busy)
        cancelled = []
        for lane, task in list(self._in_flight.items()):
            if not task.done() and all(m in self._abandoned for m in self._in_flight_messages.get(lane, ())):
                task.cancel()
                cancelled.append(task)
                del self._in_flight[lane]
                self._in_flight_messages.pop(lane, None)
        if cancelled:
            await asyncio.wait(cancelled, timeout=1.0)  # they end at their next await
        if self.correlation_store is not None and messages:
            # what the given-up messages changed is dropped (their cancelled deliveries discarded their
            # own changes; a later batch that also read other partitions keeps only those), and their
            # table partitions' clocks start again from the groups at the next batch: the messages'
            # events are read again and must not be late on a clock they moved
            self.correlation_store.give_up({(message.topic, message.partition) for message in messages})
            self.correlator.forget_clocks({message.partition % self.settings.partitions for message in messages})
            self._correlations_owned = frozenset()  # a reindex at the next batch
        return waiting_on

    def _discard_state(self, result: Any) -> None:
        """A batch given up before its delivery: its correlation state changes are dropped."""
        if self.correlation_store is not None:
            self.correlation_store.discard(result.correlation_writes)

    async def drain(self, lane: str | None = None, timeout: float | None = None) -> bool:
        """Wait for the delivery in flight (of ``lane``, or of every lane); True when none is
        left. After ``timeout`` seconds the rest is cancelled: its messages stay unacked and
        are processed again after the restart."""
        tasks = [t for name, t in self._in_flight.items() if lane is None or name == lane]
        if not tasks:
            return True
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for name in [name for name, t in self._in_flight.items() if t.done() or t in pending]:
            del self._in_flight[name]
            self._in_flight_messages.pop(name, None)
        return not pending

    def _note_backlog(self, messages: list, result: Any) -> None:
        """The batch's messages are read; if it read a source with regrouped correlations, the
        owned partitions of such sources still behind get behind records (pipeline/stream/backlog.py)."""
        backlog = self.backlog
        for message in messages:
            backlog.took(message.topic, message.partition, message.offset)
        if result.progress and self._consumer is not None:
            consumer = self._consumer()
            self.processor.behind_records(result, backlog.behind(consumer.assignment(), consumer.highwater))

    def _follow_assignment(self) -> None:
        """When this worker's partitions change, the container index keeps only the owned
        partitions' containers and learns those recovered into the table, so they expire too."""
        owned = self.store.owned_partitions()
        if owned == self._owned:
            return
        self._owned = owned
        self.processor.forget_partitions(set(owned))
        for cid in self.store.containers():
            partition = self.processor.partition_of(cid)
            if partition in owned:
                self.processor.track(cid, partition)

    def _follow_correlation_assignment(self) -> None:
        """The first batch, and each after this worker's partitions changed: the evaluator's
        index is rebuilt from the groups of the owned partitions (recovered from the changelog
        by then), so they count toward the group limit and expire; revoked ones are forgotten."""
        owned = owned_partitions(self.correlation_store.table)
        if owned == self._correlations_owned:
            return
        first = self._correlations_owned is None
        self._correlations_owned = owned
        if first:
            self.processor.use_correlation_store(self.correlation_store)
        else:
            self.correlator.reindex()

    async def _to_every_regroup_partition(self, lines_by_partition: dict[int, list[bytes]], pending: list) -> None:
        """Progress or behind records, sent to the regroup partitions they name (not by key)."""
        for partition, lines in lines_by_partition.items():
            if self.regroup is None:  # a processor that regroups needs the topic: a wiring bug, not input
                raise RuntimeError("progress or behind records but no regroup topic")
            for record in ndjson_records(lines):
                pending.append(await self.regroup.send(key=PROGRESS_KEY, value=record, partition=partition))

    async def _deliver(self, result) -> None:
        pending: list[Any] = []
        for key, value in result.forwards:
            pending.append(await self.repartition.send(key=key, value=value))
            metrics.FORWARDED.inc(value.count(b"\n") + 1)
        # before the forwards: a clock learns of a backlog before other partitions' events move it
        await self._to_every_regroup_partition(result.behind, pending)
        for key, lines in result.regrouped.items():
            if self.regroup is None:  # a processor that regroups needs the topic: a wiring bug, not input
                raise RuntimeError("events to regroup but no regroup topic")
            for record in ndjson_records(lines):
                pending.append(await self.regroup.send(key=key, value=record))
            metrics.REGROUPED.inc(len(lines))
        # after the forwards: a regroup partition reads an input partition's progress only after
        # that partition's events up to it (the producer keeps each partition's records in the
        # order sent, one batch in flight a partition; this lane's previous batch is delivered)
        await self._to_every_regroup_partition(result.progress, pending)
        for letter in result.dead_letters:
            pending.append(await self.deadletters.send(key=letter.key, value=letter.to_json()))
            self.dead_letter_counts[letter.reason] += 1
            metrics.DEAD_LETTERS.labels(letter.reason).inc()
        for key, alert in result.alerts:
            # a value too long for a Kafka record is cut (the same alert in every sink): pipeline/alerts/bounds.py
            shorter, document = for_kafka(alert)
            if shorter is not alert:
                alert = shorter
                metrics.ALERTS_SHORTENED.inc()
            pending.append(await self.alerts.send(key=key, value=document))
            if self.settings.route_by_priority:
                pending.append(await self._priority_topic(alert.priority.label.lower()).send(key=key, value=document))
            if self.ocsf is not None:
                _, finding = for_kafka(alert, ocsf_json)  # it repeats the command line in its evidences
                pending.append(await self.ocsf.send(key=key, value=finding))
            self.sink.add(alert.uuid, alert.time_ns, alert_document(alert))
            metrics.ALERTS.labels(alert.priority.label).inc()
        metrics.EVENTS.inc(result.events)
        metrics.ENRICHED.inc(result.enriched)
        if result.evicted:
            metrics.CONTAINERS_EVICTED.inc(result.evicted)
        metrics.CONTAINERS.set(len(self.processor.containers))
        self.waiting_on = "kafka"
        await self._wait_delivered(pending)
        if len(self.sink):
            self.waiting_on = "opensearch"
            stored_before = self.sink.stored + self.sink.duplicates
            rejected = await self.sink.flush()
            metrics.STORED.inc(self.sink.stored + self.sink.duplicates - stored_before)
            if rejected:
                letters = [
                    dl.DeadLetter(INDEX_REJECTED, f"OpenSearch refused alert {r.doc_id} for {r.index} (HTTP {r.status}): {r.reason}",
                                  self.settings.alerts_topic, -1, -1, r.doc_id.encode(), r.document)
                    for r in rejected
                ]
                more = [await self.deadletters.send(key=x.key, value=x.to_json()) for x in letters]
                for letter in letters:
                    self.dead_letter_counts[letter.reason] += 1
                    metrics.DEAD_LETTERS.labels(letter.reason).inc()
                await self._wait_delivered(more)
        self.waiting_on = None

    async def _wait_delivered(self, pending: list[Any]) -> None:
        """Wait until Kafka has every record (acks=all). A send that fails is retried
        by the producer; one that fails for good stops the worker unacked."""
        if not pending:
            return
        try:
            await asyncio.gather(*pending)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("producing to Kafka failed; the worker stops without acking this batch")
            os._exit(71)

    def _priority_topic(self, priority: str) -> Any:
        found = self._priority_topics.get(priority)
        if found is None and self.topic_factory is not None:
            found = self._priority_topics[priority] = self.topic_factory(self.settings.priority_topics()[priority])
        return found
