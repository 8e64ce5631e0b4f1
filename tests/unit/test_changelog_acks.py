"""A batch's messages are released (so their offsets can be committed) only once Kafka has
acknowledged the changelog records of the tables written so far: Faust's own flush before a
commit gives up on a slow record (pipeline/state/changelog_acks.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import faust
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage, PendingMessage

from pipeline.state.changelog_acks import AckedChangelogTable
from pipeline.stream.delivery import BatchDelivery, build_processor
from pipeline.stream.settings import PipelineSettings

from delivery_fakes import FakeTopic, SlowFirstBulk, shell_batch

ROOT = Path(__file__).resolve().parents[2]


class SlowChannel:
    """A Faust channel whose records each take ``seconds`` to reach the Kafka client."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.published = 0

    async def publish_message(self, fut, wait=False):
        await asyncio.sleep(self.seconds)
        self.published += 1
        fut.set_result(None)


def pending(channel) -> FutureMessage:
    return FutureMessage(PendingMessage(channel, b"k", b"v", 0, None, None, "raw", "raw", None))


async def test_fausts_flush_before_a_commit_returns_with_records_still_in_its_buffer():
    # the premise of AckedChangelogTable: Faust's consumer flushes this buffer before it commits
    # offsets, and that flush ends as soon as one record takes over 0.1 s
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    channel = SlowChannel(0.3)
    futures = [pending(channel) for _ in range(3)]
    try:
        for future in futures:
            buffer.put(future)
        await asyncio.wait_for(buffer.flush(), 5)
        assert buffer.size > 0 and not all(f.done() for f in futures)  # "flushed", yet not produced
    finally:
        await asyncio.wait_for(asyncio.gather(*futures), 5)  # its own task does produce them, later
        await buffer.stop()
    assert channel.published == 3


def acked_table(monkeypatch) -> tuple[AckedChangelogTable, list[asyncio.Future]]:
    sent: list[asyncio.Future] = []

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        future = asyncio.get_running_loop().create_future()
        sent.append(future)
        return future

    monkeypatch.setattr(faust.Table, "send_changelog", send_changelog)  # what Faust's would return: its record's future
    app = faust.App("changelog-acks-test", broker="kafka://127.0.0.1:1", store="memory://", Table=AckedChangelogTable)
    return app.Table("groups", default=None), sent


async def test_the_table_knows_its_changelog_records_until_kafka_acknowledges_them(monkeypatch):
    table, sent = acked_table(monkeypatch)
    assert isinstance(table, AckedChangelogTable)
    first = table.send_changelog(0, b"a", b"1")
    second = table.send_changelog(1, b"b", b"2")
    assert set(table.unacked_changelog()) == {first, second}
    first.set_result(None)
    await asyncio.sleep(0)
    assert table.unacked_changelog() == [second]
    second.set_exception(RuntimeError("produce failed for good"))
    await asyncio.sleep(0)
    assert table.unacked_changelog() == []  # ended either way; whoever awaited it saw the error


class ChangelogTable:
    """The delivery's view of an AckedChangelogTable whose records Kafka has not acknowledged."""

    def __init__(self) -> None:
        self.record = asyncio.get_running_loop().create_future()

    def unacked_changelog(self) -> list[asyncio.Future]:
        return [] if self.record.done() else [self.record]


async def test_a_batch_is_released_only_after_the_tables_changelog_records_are_acknowledged():
    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1",
                                          "PEREGRINE_CONFIG_AUDIT": "false"})
    table = ChangelogTable()
    delivery = BatchDelivery(settings, build_processor(settings), alerts=FakeTopic(), deadletters=FakeTopic(),
                             repartition=FakeTopic(), table=table)
    client = delivery.sink.client = SlowFirstBulk()
    client.gate.set()
    acked: list[int] = []
    await delivery.run(shell_batch(settings.syscall_topic, range(0, 3), acked), stateful=False)
    for _ in range(30):
        await asyncio.sleep(0.01)
    assert b"".join(client.bodies).count(b'"create"') == 3  # the alerts are stored...
    assert acked == []  # ...but the offsets wait for the changelog
    table.record.set_result(None)
    assert await asyncio.wait_for(delivery.drain(), 5)
    assert acked == [0, 1, 2]
