"""Correlation state in a Faust table whose values are raw bytes (the worker's app
uses ``value_serializer="raw"``): the ``MutableMapping[str, dict]`` the evaluator
takes, JSON-encoding each group's state.

Faust picks the partition of a table write (its changelog and RocksDB) from
the *current event*. The worker processes batches, so before evaluating an
event it calls :meth:`TableCorrelationStore.bind` with that event's Faust
event (``message.ref`` in pipeline/stream/batch.py); every read and write
then runs in that event's partition, as the process-tree store does.
Syscall correlations grouped by ``container.id`` are co-partitioned with the
syscall topic (keyed by container id), so a group's state lives in the
partition that receives its events, and comes back from the changelog when
the worker restarts or the partition moves (call the evaluator's
``reindex()`` after an assignment).

Given the table's partition count (``partitions``), the store binds a
stand-in event of partition ``event partition % partitions`` named after the
changelog topic (pipeline/state/table_partition.py): an event from a topic
with another partition count (K8s audit, CloudTrail) then still writes to a
partition the table has. Each value starts with its partition
(``b"3|{...}"``), so that

- a group deleted while another event is bound (expiry, eviction) gets its
  tombstone in its own changelog partition, and
- :meth:`items` (what ``reindex`` reads) can leave out the groups of
  partitions this worker does not own (``owned``): a memory table also holds
  standby partitions, whose groups are another worker's to expire.

Writes are held until the end of a batch: a group changed by many events of a
batch (a distinct count over a busy container's connections) is encoded and
logged to the changelog once, not once per event. Every Faust table write is a
changelog record; written per event, the fan-out correlation's groups alone
cost the worker about half its throughput on bench/pipeline.py's events.

A batch's changes reach the table (and its changelog) only once the batch's
alerts are delivered. The worker's batch processor keeps them in a
:class:`BatchWrites` of its own (:meth:`bind` with ``writes``; the two agents
interleave their batches), :meth:`seal` encodes them at the batch's end into a
pending layer, and the delivery :meth:`commit` s it after Kafka and OpenSearch
have the alerts, before the batch's offsets can be committed (or
:meth:`discard` s it when the batch is given up). Reads see the batch's own
writes, then the pending layers, newest first, then the table. Were the state
written before delivery, a worker killed (or stopped while OpenSearch is
away) between the two would come back to a group that has already fired; the
replayed batch would then count its events as seen and give no alert, and the
alert the first run produced would never be stored. Now the changelog is
never ahead of the delivered alerts: a replay either finds the state without
the batch (and fires again, with the same alert id) or after a delivery that
stored the alerts. :meth:`flush` seals and commits at once, for callers that
deliver nothing (``peregrine scan``, tests).

The bound partition is also the evaluator's event-time *clock* (:attr:`clock`):
a group lives in one partition, so its watermark is that partition's, as
Kafka Streams and Flink keep event time per input partition; after a
restart :meth:`clocked_items` gives each group with its partition.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Collection, Iterator, MutableMapping
from typing import Any

import orjson

from pipeline import metrics
from pipeline.json_bytes import json_bytes
from pipeline.record_bounds import MAX_PART_BYTES
from pipeline.state.table_partition import PartitionEvent, faust_current_event, run_as

_MISSING = object()
_DELETED = object()  # a held delete (its tombstone goes to the partition that holds the group)
log = logging.getLogger("peregrine.correlation.table")


class TableCorrelationStore(MutableMapping):
    def __init__(
        self,
        table: Any,
        current_event: contextvars.ContextVar | None = None,
        *,
        partitions: int | None = None,
        topic: str | None = None,
        owned: Callable[[], Collection[int]] | None = None,
    ) -> None:
        self.table = table
        self._var = current_event if current_event is not None else faust_current_event()
        self.partitions = partitions
        self.topic = topic or ""
        self.owned = owned
        self._ref: Any = None
        self._partition: int | None = None
        self._source: tuple[str | None, int | None] = (None, None)
        self._stand_ins: dict[int, PartitionEvent] = {}
        # key -> (binding, partition, state or _DELETED, source (topic, partition)): the writes of the batch being processed
        self._own = BatchWrites()
        self._held: BatchWrites = self._own
        # sealed batches' changes awaiting their delivery (key -> (binding, partition, bytes or
        # _DELETED, source)), oldest first
        self._pending: list[dict[str, tuple[Any, int | None, Any, tuple]]] = []
        self.oversized = 0  # groups dropped because their state would not fit a changelog record
        self.unreadable = 0  # stored values that are no group's JSON (read as no group)

    def begin(self) -> "BatchWrites":
        """A batch's writes (to :meth:`bind` with, then :meth:`seal`): they start with the
        store's own held changes, made between batches (a reindex dropping unreadable or
        orphaned groups), which are then written with the batch."""
        writes = BatchWrites(self._own)
        self._own.clear()
        return writes

    def bind(self, ref: Any, writes: "BatchWrites | None" = None) -> None:
        """The Faust event whose partition the next reads and writes belong to (None: unbound),
        and the batch whose writes they are (None: the store's own, which :meth:`flush` writes)."""
        self._held = self._own if writes is None else writes
        message = getattr(ref, "message", None) if ref is not None else None
        partition = getattr(message, "partition", None)
        self._source = (getattr(message, "topic", None), partition)  # the input partition the writes come from
        if partition is not None and self.partitions:
            partition %= self.partitions
            ref = self._stand_in(partition)
        self._ref = ref
        self._partition = partition

    @property
    def clock(self) -> int | None:
        """The event-time clock of the current binding: its table partition (None: unbound)."""
        return self._partition

    def _stand_in(self, partition: int) -> PartitionEvent:
        found = self._stand_ins.get(partition)
        if found is None:
            found = self._stand_ins[partition] = PartitionEvent(partition, self.topic)
        return found

    # -- encoding: b"<partition>|<json>", or the JSON alone when the partition is unknown

    @staticmethod
    def _encode(state: dict, partition: int | None) -> bytes:
        data = json_bytes(state)
        return data if partition is None else b"%d|" % partition + data

    @staticmethod
    def _split(value: Any) -> tuple[int | None, bytes]:
        """A stored value's partition (None when it names none) and JSON."""
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif isinstance(value, str):
            value = value.encode()
        if value[:1] == b"{":
            return None, value
        head, _, body = value.partition(b"|")
        return int(head), body

    @classmethod
    def _decode(cls, value: Any) -> tuple[int | None, dict]:
        partition, body = cls._split(value)
        return partition, orjson.loads(body)

    def _readable(self, key: str, value: Any) -> tuple[int | None, dict] | None:
        """A stored value's (partition, state), or None for one that is not a group's JSON (a
        corrupted changelog record): counted and logged; the group starts afresh."""
        try:
            partition, state = self._decode(value)
            if isinstance(state, dict):
                return partition, state
        except (ValueError, TypeError):
            pass
        self.unreadable += 1
        metrics.CORRELATION_GROUPS_DROPPED.inc()
        log.warning("correlation group %.200s dropped: its stored state is not a group's JSON", key)
        return None

    # -- reads and writes in the bound partition

    def _with(self, fn: Callable[[], Any], ref: Any = _MISSING) -> Any:
        """``fn()`` as the event ``ref`` (by default the bound one; None: as whatever is current)."""
        ref = self._ref if ref is _MISSING else ref
        if ref is None:
            return fn()
        return run_as(self._var, ref, fn)

    def _unbound_get(self, key: str) -> Any:
        """The key's value in whichever partition holds it."""
        return run_as(self._var, None, lambda: self.table.get(key))

    def __getitem__(self, key: str) -> dict:
        state = self.get(key, _MISSING)
        if state is _MISSING:
            raise KeyError(key)
        return state

    def get(self, key: str, default: Any = None) -> Any:
        held = self._held.get(key)
        if held is not None:
            return default if held[2] is _DELETED else held[2]
        value = self._pending_value(key)
        if value is None:
            value = self._with(lambda: self.table.get(key))
        if value is None or value is _DELETED:
            return default
        readable = self._readable(key, value)
        return default if readable is None else readable[1]

    def _pending_value(self, key: str) -> Any:
        """The key's encoded value in the newest pending layer that changed it (_DELETED for
        a delete), else None."""
        for layer in reversed(self._pending):
            change = layer.get(key)
            if change is not None:
                return change[2]
        return None

    def __setitem__(self, key: str, state: dict) -> None:
        self._held[key] = (self._ref, self._partition, state, self._source)

    def pop(self, key: str, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """Delete ``key``; its tombstone goes to the partition that holds it, at :meth:`flush`."""
        held = self._held.get(key)
        if held is not None and held[2] is not _DELETED:
            self._held[key] = (held[0], held[1], _DELETED, self._source)
            return held[2]
        value = None
        if held is None:
            value = self._pending_value(key)
            if value is None:
                value = self._unbound_get(key)
        if value is None or value is _DELETED:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._held[key] = (self._ref, self._partition, _DELETED, self._source)
        readable = self._readable(key, value)
        if readable is not None:
            return readable[1]
        return {} if default is _MISSING else default  # deleted all the same

    def flush(self) -> None:
        """Write the store's own held changes to the table now (nothing to deliver first)."""
        self.commit(self.seal(self._own))

    def seal(self, writes: "BatchWrites") -> dict[str, tuple[Any, int | None, Any, tuple]] | None:
        """A batch's changes, encoded, as a pending layer that reads see until it is committed
        or discarded (None when it changed nothing). ``writes`` is emptied: the evaluator may
        change the same state objects in the next batch."""
        if self._held is writes:
            self._held = self._own  # what is written between batches is the store's own
        if not writes:
            return None
        layer: dict[str, tuple[Any, int | None, Any, tuple]] = {}
        for key, (ref, partition, state, source) in writes.items():
            data = _DELETED
            if state is not _DELETED:
                data = self._encode(state, partition)
                if len(data) + len(key) > MAX_PART_BYTES:
                    # a group whose state outgrew one changelog record (a distinct count of thousands of
                    # long values): dropped, as a group evicted over max_groups is, rather than written
                    self.oversized += 1
                    metrics.CORRELATION_GROUPS_DROPPED.inc()
                    log.warning("correlation group %.200s dropped: its state (%d bytes) is over the %d bytes one "
                                "changelog record may hold", key, len(data), MAX_PART_BYTES)
                    data = _DELETED
            layer[key] = (ref, partition, data, source)
        writes.clear()
        self._pending.append(layer)
        return layer

    def commit(self, layer: dict[str, tuple[Any, int | None, Any, tuple]] | None) -> None:
        """Write a sealed batch's changes to the table: each changed group once, in the
        partition its last write was bound to; each deleted one as a tombstone where the table
        holds it. Layers are committed in the order they were sealed (one agent delivers its
        batches in order; the two agents' correlations, and so their groups, are not shared)."""
        if layer is None:
            return
        self._drop_layer(layer)
        for key, (ref, _, data, _) in layer.items():
            if data is _DELETED:
                self._delete(key, ref)
            else:
                self._write(ref, key, data)

    def discard(self, layer: dict[str, tuple[Any, int | None, Any, tuple]] | None) -> None:
        """A batch given up before its delivery (its offsets stay uncommitted): its changes are
        dropped, so whoever processes it again starts from the state before it."""
        if layer is not None:
            self._drop_layer(layer)

    def give_up(self, sources: Collection[tuple[str, int]]) -> None:
        """Messages of these input partitions (topic, partition) were given up (a stop or a
        revoke; their offsets stay uncommitted): what they changed last in pending layers is
        dropped, also in a batch that read other partitions too and is still delivered, so the
        partitions' next owner replays those events over the state from before them. A change
        made by another input partition of the same table partition (the regroup topic's, a
        syscall partition's) stays: its messages are committed."""
        for layer in self._pending:
            for key in [key for key, change in layer.items() if change[3] in sources]:
                del layer[key]

    def _drop_layer(self, layer: dict) -> None:
        for index, pending in enumerate(self._pending):
            if pending is layer:
                del self._pending[index]
                return

    def _write(self, ref: Any, key: str, data: bytes) -> None:
        def write() -> None:
            self.table[key] = data

        self._with(write, ref)

    def _delete(self, key: str, ref: Any) -> None:
        value = self._unbound_get(key)
        if value is None:
            return  # never written (created and deleted within the batch)
        partition = self._split(value)[0]
        if partition is not None and self.partitions:
            ref = self._stand_in(partition)
        self._with(lambda: self.table.pop(key, None), ref)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    # -- what this worker holds

    def items(self) -> list[tuple[str, dict]]:  # type: ignore[override]
        """Every group this worker owns, read wherever it is."""
        return [(key, state) for key, state, _ in self.clocked_items()]

    def clocked_items(self) -> list[tuple[str, dict, int | None]]:
        """Every group this worker owns, with its partition, the :attr:`clock` it was written
        under (for ``reindex``)."""
        self.flush()
        owned = set(self.owned()) if self.owned is not None else None
        out: list[tuple[str, dict, int | None]] = []
        keys = dict.fromkeys(self.table.keys())
        for layer in self._pending:
            keys.update(dict.fromkeys(layer))
        for key in keys:
            value = self._pending_value(key)
            if value is None:
                value = self._unbound_get(key)
            if value is None or value is _DELETED:
                continue
            readable = self._readable(key, value)
            if readable is None:
                continue  # written again when its group next changes
            partition, state = readable
            if owned is not None and partition is not None and partition not in owned:
                continue
            out.append((key, state, partition))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self.items()])

    def __len__(self) -> int:
        self.flush()
        if not self._pending:
            return len(self.table)
        keys = set(self.table.keys())
        for layer in self._pending:
            for key, (_, _, data, _) in layer.items():
                if data is _DELETED:
                    keys.discard(key)
                else:
                    keys.add(key)
        return len(keys)


class BatchWrites(dict):
    """One batch's held changes to a :class:`TableCorrelationStore`: key -> (binding,
    partition, state or a delete, the input partition that made it), until :meth:`TableCorrelationStore.seal`."""

    __slots__ = ()


__all__ = ["BatchWrites", "TableCorrelationStore"]
