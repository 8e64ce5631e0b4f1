"""Records fetched before a seek of their partition never reach the streams after it.

Faust's fetcher (``Consumer._drain_messages``) takes a batch of records from
the consumer thread and hands them to the streams one at a time, awaiting
each. A seek can run meanwhile: at the end of a rebalance's recovery Faust
seeks every stream partition back to its committed offset and resets its
read offset there (``perform_seek``). The rest of the batch, fetched from the
old position, was still handed out after it. Faust took the first of those
records, beyond the committed offset, for a *gap* in the partition (offsets
that do not exist, as after compaction or a transaction marker): it recorded
the offsets in between as done, and its next commit moved the partition past
records no worker had processed; when the seek fetched them again they were
below the read offset and dropped. The chaos soak
(tests/integration/test_pipeline_chaos.py, 300 rounds) lost records in two
runs of two: in the one traced through the group's committed offsets, a
repartition partition's went from 287 to 295 after a rebalance while offsets
288-293 were never processed (their alerts missing, the regrouped threshold
short of their counts).

The fetch loop also records each record's offset as the partition's read
offset after handing it out, so a record in hand while the seek resets the
read offset puts it forward again, and the records fetched again from the
committed offset are then below it and dropped.

:func:`install` stamps every seek of a partition with a count (aiokafka's
``Fetcher.seek_to``, which Faust's seeks and aiokafka's ``seek_to_committed``
go through, and the rewinds of pipeline/stream/rewind.py), and each batch the
consumer thread takes with the count at that moment. A record of a partition
sought after its batch was taken is left out, as aiokafka itself drops the
records it had prefetched for a partition it seeks: the seek has moved the
partition to where its records are to be read from, so they are fetched
again. The record in the fetch loop's hands when the seek lands is dropped by
the loop itself (its read offset is set just past it), and once the loop has
let go of it the read offset is put back where the seek left it.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("peregrine.worker")

_SEEK_TO = Fetcher.seek_to
_FETCH_RECORDS = faust_aiokafka.AIOKafkaConsumerThread._fetch_records
_GETMANY = faust_aiokafka.Consumer.getmany
_PERFORM_SEEK = faust_aiokafka.Consumer.perform_seek


class SeekStamps:
    """A fetcher's seeks: how many so far, and the count at each partition's last one."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: dict[Any, int] = {}  # (topic, partition) -> count at its last seek

    def sought(self, tp: Any) -> None:
        self.count += 1
        self.last[tp] = self.count

    def sought_since(self, tp: Any, count: int) -> bool:
        """Was ``tp`` sought after the moment the count was ``count``?"""
        return self.last.get(tp, 0) > count


def stamps_of(fetcher: Any) -> SeekStamps:
    found = getattr(fetcher, "_peregrine_seeks", None)
    if found is None:
        found = fetcher._peregrine_seeks = SeekStamps()
    return found


def _seek_to(self: Any, tp: Any, offset: int) -> None:
    _SEEK_TO(self, tp, offset)
    stamps_of(self).sought(tp)  # TopicPartition and Faust's TP are equal tuples: either finds it


async def _fetch_records(self: Any, consumer: Any, active_partitions: Any, timeout: Any = None, max_records: Any = None) -> Any:
    records = await _FETCH_RECORDS(self, consumer, active_partitions, timeout=timeout, max_records=max_records)
    # on the consumer thread, as the seeks: no seek runs between the fetcher handing these out and this
    self._peregrine_taken_at = stamps_of(consumer._fetcher).count
    return records


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    stamps: SeekStamps | None = None
    taken_at = 0
    left_out = 0
    try:
        async for tp, message in _GETMANY(self, timeout):
            _restore_read_offset(self)  # the loop is done with the record it held
            if stamps is None:  # the batch is in hand: it was taken at the thread's last fetch
                thread = self._thread
                taken_at = getattr(thread, "_peregrine_taken_at", 0)
                stamps = stamps_of(thread._ensure_consumer()._fetcher)
            if stamps.count > taken_at and stamps.sought_since(tp, taken_at):
                left_out += 1
                continue
            self._peregrine_in_hand = (tp, message.offset, taken_at, stamps)
            yield tp, message
            self._peregrine_in_hand = None
    finally:
        self._peregrine_in_hand = None
        _restore_read_offset(self)
    if left_out:
        log.info("left out %d record(s) fetched before a seek of their partition: they are fetched again from where it "
                 "sought", left_out)


async def _perform_seek(self: Any) -> None:
    await _PERFORM_SEEK(self)
    in_hand = getattr(self, "_peregrine_in_hand", None)
    if in_hand is not None:
        tp, offset, taken_at, stamps = in_hand
        if stamps.sought_since(tp, taken_at):
            # the loop holds a record fetched before this seek: past its read offset, it drops the
            # record (or, already handing it out, it sets the read offset to it); either way the
            # read offset the seek set is put back before the loop takes its next record
            self._peregrine_restore = (tp, self._read_offset[tp])
            self._read_offset[tp] = offset + 1


def _restore_read_offset(self: Any) -> None:
    restore = getattr(self, "_peregrine_restore", None)
    if restore is not None:
        self._peregrine_restore = None
        tp, offset = restore
        self._read_offset[tp] = offset


# (owner, name, Peregrine's, the original)
PATCHES = ((Fetcher, "seek_to", _seek_to, _SEEK_TO),
           (faust_aiokafka.AIOKafkaConsumerThread, "_fetch_records", _fetch_records, _FETCH_RECORDS),
           (faust_aiokafka.Consumer, "getmany", _getmany, _GETMANY),
           (faust_aiokafka.Consumer, "perform_seek", _perform_seek, _PERFORM_SEEK))


def install() -> None:
    for owner, name, replacement, _ in PATCHES:
        setattr(owner, name, replacement)
