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
from pipeline.record_bounds import MAX_PART_BYTES
from pipeline.state.table_partition import PartitionEvent, faust_current_event, run_as

_MISSING = object()
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
        self.oversized = 0  # groups dropped because their state would not fit a changelog record

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

    def _encode(self, state: dict) -> bytes:
        data = orjson.dumps(state)
        return data if self._partition is None else b"%d|" % self._partition + data

    @staticmethod
    def _decode(value: Any) -> tuple[int | None, dict]:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif isinstance(value, str):
            value = value.encode()
        if value[:1] == b"{":
            return None, orjson.loads(value)
        head, _, body = value.partition(b"|")
        return int(head), orjson.loads(body)

    # -- reads and writes in the bound partition

    def _with(self, fn: Callable[[], Any]) -> Any:
        if self._ref is None:
            return fn()
        return run_as(self._var, self._ref, fn)

    def _unbound_get(self, key: str) -> Any:
        """The key's value in whichever partition holds it."""
        return run_as(self._var, None, lambda: self.table.get(key))

    def __getitem__(self, key: str) -> dict:
        value = self._with(lambda: self.table.get(key))
        if value is None:
            raise KeyError(key)
        return self._decode(value)[1]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._with(lambda: self.table.get(key))
        return default if value is None else self._decode(value)[1]

    def __setitem__(self, key: str, state: dict) -> None:
        data = self._encode(state)
        if len(data) + len(key) > MAX_PART_BYTES:
            # a group whose state outgrew one changelog record (a distinct count of thousands of
            # long values): dropped, as a group evicted over max_groups is, rather than written
            self.oversized += 1
            metrics.CORRELATION_GROUPS_DROPPED.inc()
            log.warning("correlation group %.200s dropped: its state (%d bytes) is over the %d bytes one changelog "
                        "record may hold", key, len(data), MAX_PART_BYTES)
            self.pop(key, None)
            return

        def write() -> None:
            self.table[key] = data

        self._with(write)

    def pop(self, key: str, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """Delete ``key`` in the partition that holds it (its tombstone goes there)."""
        value = self._unbound_get(key)
        if value is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        partition, state = self._decode(value)
        if partition is not None and self.partitions:
            run_as(self._var, self._stand_in(partition), lambda: self.table.pop(key, None))
        else:
            self._with(lambda: self.table.pop(key, None))
        return state

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    # -- what this worker holds

    def items(self) -> list[tuple[str, dict]]:  # type: ignore[override]
        """Every group this worker owns, read wherever it is."""
        return [(key, state) for key, state, _ in self.clocked_items()]

    def clocked_items(self) -> list[tuple[str, dict, int | None]]:
        """Every group this worker owns, with its partition, the :attr:`clock` it was written
        under (for ``reindex``)."""
        owned = set(self.owned()) if self.owned is not None else None
        out: list[tuple[str, dict, int | None]] = []
        for key in list(self.table.keys()):
            value = self._unbound_get(key)
            if value is None:
                continue
            partition, state = self._decode(value)
            if owned is not None and partition is not None and partition not in owned:
                continue
            out.append((key, state, partition))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self.items()])

    def __len__(self) -> int:
        return len(self.table)


__all__ = ["TableCorrelationStore"]
