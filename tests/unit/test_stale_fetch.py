"""Faust's fetcher must not take records fetched before a seek for a gap in their partition
(pipeline/stream/stale_fetch.py). Runs Faust's own fetch loop (``_drain_messages``) and
``getmany`` over a stand-in for aiokafka's fetcher: a batch of records is taken, and while
it is handed out the partition is sought back to its committed offset, as Faust's recovery
does at the end of a rebalance. The seek lands where the fetch loop lets other tasks run
(every hundred records), as the recovery's ``perform_seek`` can."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from types import SimpleNamespace

import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.types import TP as FaustTP

from pipeline.stream import stale_fetch

TOPIC = "events"
TP = TopicPartition(TOPIC, 0)  # as aiokafka names it (its seeks)
STREAM_TP = FaustTP(TOPIC, 0)  # as Faust does (its records and offsets)


class FetcherStandIn:
    """What Faust's consumer thread and aiokafka's ``seek_to`` touch of aiokafka's fetcher:
    each fetch hands out the next prepared batch."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches
        self._closed = False
        self._records: dict = {}
        self._wait_consume_future = None
        self._subscriptions = SimpleNamespace(seek=lambda tp, offset: None, fetch_context=contextmanager(lambda: (yield)))

    def _notify(self, future) -> None:
        pass

    async def fetched_records(self, partitions, timeout=None, max_records=None):
        await asyncio.sleep(0)
        if not self.batches:
            return {}
        return {STREAM_TP: [ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"v", None, 1, 1, ()) for offset in self.batches.pop(0)]}


def drain(monkeypatch, installed: bool, seek_at: str = "yield") -> tuple[list[int], object]:
    """Runs Faust's fetch loop over a batch of offsets 194-296 and then, fetched again after
    the seek, 287-296: once the stream has taken offset 293 (the hundredth record), the
    partition is sought back to 287 (its committed offset) and Faust's read offset reset
    there, as ``perform_seek`` does: at the loop's next yield to other tasks (``seek_at``
    "yield"), or while the stream takes 293 ("callback"). Returns the offsets taken and the
    gaps Faust recorded."""
    for owner, name, replacement, original in stale_fetch.PATCHES:  # agents.app may have installed them
        monkeypatch.setattr(owner, name, replacement if installed else original)

    real_sleep = asyncio.sleep
    seeks: list = []  # a seek the recovery will make at the fetch loop's next yield

    async def sleep(delay, *args, **kwargs):  # where the fetch loop lets the recovery run
        if delay == 0 and seeks:
            seeks.pop()()
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", sleep)

    async def scenario() -> tuple[list[int], object]:
        app = faust.App("stale-fetch-test", broker="kafka://127.0.0.1:1", store="memory://")  # on this loop
        consumer = app.consumer
        thread = consumer._thread
        fetcher = FetcherStandIn([list(range(194, 297)), list(range(287, 297))])
        aiokafka_consumer = SimpleNamespace(_fetcher=fetcher, _closed=False, _max_poll_records=None, highwater=lambda tp: 297)
        monkeypatch.setattr(thread, "_ensure_consumer", lambda: aiokafka_consumer)

        async def getmany(active_partitions, timeout):  # the consumer thread's getmany, on this loop
            return await thread._fetch_records(aiokafka_consumer, active_partitions, timeout=timeout)

        monkeypatch.setattr(thread, "getmany", getmany)
        monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
        consumer._active_partitions = {STREAM_TP}
        consumer._read_offset[STREAM_TP] = 194
        taken: list[int] = []
        stop = SimpleNamespace(_stopped=asyncio.Event())

        async def seek_to_committed():
            Fetcher.seek_to(fetcher, TP, 287)
            return {TP: 287}

        monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)

        def perform_seek() -> None:  # the recovery's seek back to the committed offset, as a task
            asyncio.ensure_future(consumer.perform_seek())

        async def callback(message) -> None:
            taken.append(message.offset)
            if message.offset == 293 and len(taken) == 100:
                if seek_at == "yield":
                    seeks.append(perform_seek)
                else:
                    await consumer.perform_seek()
            if not fetcher.batches:
                stop._stopped.set()  # the loop ends once it has handed out the second batch

        consumer.callback = callback
        consumer.resume_flow()
        await asyncio.wait_for(consumer._drain_messages(stop), 10)
        return taken, consumer._gap[STREAM_TP]

    return asyncio.run(scenario())


def test_fausts_fetch_loop_takes_records_fetched_before_a_seek_for_a_gap(monkeypatch):
    taken, gap = drain(monkeypatch, installed=False, seek_at="yield")
    assert taken[:103] == list(range(194, 297))  # 294-296 handed out after the seek to 287...
    assert sorted((i.begin, i.end) for i in gap) == [(288, 295)]  # ...so Faust counts 288-294 as done
    assert taken[103:] == [296]  # and fetched again, all but 296 are below its read offset: dropped


def test_fausts_fetch_loop_puts_the_read_offset_forward_again_after_a_seek(monkeypatch):
    taken, gap = drain(monkeypatch, installed=False, seek_at="callback")
    assert taken[:103] == list(range(194, 297))
    assert taken[103:] == [296]  # 287-295, fetched again, are below the read offset: dropped


@pytest.mark.parametrize("seek_at", ["yield", "callback"])
def test_records_fetched_before_a_seek_are_fetched_again_and_no_gap_is_recorded(monkeypatch, seek_at):
    taken, gap = drain(monkeypatch, installed=True, seek_at=seek_at)
    assert taken == list(range(194, 294)) + list(range(287, 297))  # 294-296 left out, then read from 287
    assert not gap


def test_a_seek_of_one_partition_leaves_the_others_records_alone():
    stamps = stale_fetch.SeekStamps()
    taken_at = stamps.count
    stamps.sought(TopicPartition("changelog", 3))
    assert stamps.sought_since(TopicPartition("changelog", 3), taken_at)
    assert not stamps.sought_since(TP, taken_at)
    stamps.sought(TP)
    assert stamps.sought_since(STREAM_TP, taken_at)  # Faust's TP finds aiokafka's TopicPartition
