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

Writes are held until :meth:`flush` (the batch processor calls it at the end of
each batch): a group changed by many events of a batch (a distinct count over a
busy container's connections) is encoded and logged to the changelog once,
not once per event. Every Faust table write is a changelog record; written per
event, the fan-out correlation's groups alone cost the worker about half its
throughput on bench/pipeline.py's events. Reads see the held writes. The
changelog is then as far along as the batches processed, as the process-tree
table already was: a batch's offsets are committed only after its delivery,
which comes after its flush.

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
        self._stand_ins: dict[int, PartitionEvent] = {}
        # key -> (binding, partition, state or _DELETED): the writes flush() makes
        self._held: dict[str, tuple[Any, int | None, Any]] = {}
        self.oversized = 0  # groups dropped because their state would not fit a changelog record
        self.unreadable = 0  # stored values that are no group's JSON (read as no group)

    def bind(self, ref: Any) -> None:
        """The Faust event whose partition the next reads and writes belong to (None: unbound)."""
        partition = getattr(getattr(ref, "message", None), "partition", None) if ref is not None else None
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
        value = self._with(lambda: self.table.get(key))
        if value is None:
            return default
        readable = self._readable(key, value)
        return default if readable is None else readable[1]

    def __setitem__(self, key: str, state: dict) -> None:
        self._held[key] = (self._ref, self._partition, state)

    def pop(self, key: str, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """Delete ``key``; its tombstone goes to the partition that holds it, at :meth:`flush`."""
        held = self._held.get(key)
        if held is not None and held[2] is not _DELETED:
            self._held[key] = (held[0], held[1], _DELETED)
            return held[2]
        value = self._unbound_get(key) if held is None else None
        if value is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._held[key] = (self._ref, self._partition, _DELETED)
        readable = self._readable(key, value)
        if readable is not None:
            return readable[1]
        return {} if default is _MISSING else default  # deleted all the same

    def flush(self) -> None:
        """Write the held changes to the table: each changed group once, in the partition its
        last write was bound to; each deleted one as a tombstone where the table holds it."""
        held, self._held = self._held, {}
        for key, (ref, partition, state) in held.items():
            if state is not _DELETED:
                data = self._encode(state, partition)
                if len(data) + len(key) <= MAX_PART_BYTES:
                    self._write(ref, key, data)
                    continue
                # a group whose state outgrew one changelog record (a distinct count of thousands of
                # long values): dropped, as a group evicted over max_groups is, rather than written
                self.oversized += 1
                metrics.CORRELATION_GROUPS_DROPPED.inc()
                log.warning("correlation group %.200s dropped: its state (%d bytes) is over the %d bytes one changelog "
                            "record may hold", key, len(data), MAX_PART_BYTES)
            self._delete(key, ref)

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
        for key in list(self.table.keys()):
            value = self._unbound_get(key)
            if value is None:
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
        return len(self.table)


__all__ = ["TableCorrelationStore"]
