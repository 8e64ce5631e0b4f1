"""pipeline/stream/rewind.py against the real broker: aiokafka's seek_to_committed leaves
a never-committed partition where its fetcher got to, so records fetched (and dropped by
Faust) during a rebalance would be skipped; the worker's seek sends it back to the
beginning, and the records are fetched again. A changelog partition recovery reads goes
back to the offset after the last one recovery applied: a changelog record dropped the same
way would otherwise never reach recovery, which then waits for it for ever."""

from __future__ import annotations

import uuid
from collections import Counter
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.stream.rewind import _seek_to_committed


class ConsumerThread:
    """What the patched method uses of Faust's AIOKafkaConsumerThread."""

    def __init__(self, consumer: AIOKafkaConsumer, changelogs: frozenset[str] = frozenset(), recovery=None) -> None:
        self._consumer = consumer
        self.consumer = self  # Faust's Consumer, for _is_changelog_tp and app.tables.recovery
        self._changelogs = changelogs
        self.app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery or recovering()))

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    def _is_changelog_tp(self, tp: TopicPartition) -> bool:
        return tp.topic in self._changelogs

    async def call_thread(self, fn):
        return await fn()


def recovering(active: dict | None = None, standby: dict | None = None) -> SimpleNamespace:
    """What the patched method reads of Faust's Recovery: the changelog partitions it reads
    and the last offset it applied of each (None: not known yet)."""
    active, standby = active or {}, standby or {}
    return SimpleNamespace(active_tps=set(active), active_offsets=Counter(active),
                           standby_tps=set(standby), standby_offsets=Counter(standby))


async def fetched(consumer: AIOKafkaConsumer) -> list[bytes]:
    records: list[bytes] = []
    for _ in range(20):
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records += [r.value for r in batch]
        if len(records) >= 5:
            break
    return records


async def test_a_never_committed_partition_goes_back_to_its_beginning(bootstrap_servers, topic_factory):
    topic, changelog = await topic_factory(1, prefix="pg-rewind"), await topic_factory(1, prefix="pg-rewind-changelog")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for name in (topic, changelog):
            for n in range(5):
                await producer.send_and_wait(name, f"{name}-{n}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=f"pg-rewind-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        stream, log = TopicPartition(topic, 0), TopicPartition(changelog, 0)
        consumer.assign([stream, log])
        assert len(await fetched(consumer)) == 10
        assert (await consumer.position(stream), await consumer.position(log)) == (5, 5)
        await consumer.seek_to_committed()  # aiokafka alone: nothing committed, nothing moves
        assert await consumer.position(stream) == 5
        committed = await _seek_to_committed(ConsumerThread(consumer, frozenset({changelog})))
        assert committed == {stream: None, log: None}
        assert await consumer.position(stream) == 0  # the stream partition is read again...
        assert await consumer.position(log) == 5  # ...a changelog is recovery's to seek
        assert await fetched(consumer) == [f"{topic}-{n}".encode() for n in range(5)]
        # a committed partition is left at its committed offset, as Faust expects
        await consumer.commit({stream: 3})
        await _seek_to_committed(ConsumerThread(consumer, frozenset({changelog})))
        assert await consumer.position(stream) == 3
        # recovery applied the changelog up to offset 1 and reads it: the records after it that
        # were fetched (and, in a worker, dropped) are fetched again
        await _seek_to_committed(ConsumerThread(consumer, frozenset({changelog}), recovering(active={log: 1})))
        assert await consumer.position(log) == 2
        assert sorted(await fetched(consumer)) == sorted([f"{topic}-{n}".encode() for n in (3, 4)] + [f"{changelog}-{n}".encode() for n in (2, 3, 4)])
        # nothing applied yet (-1): from its first offset; not known yet (None): recovery's to seek
        await _seek_to_committed(ConsumerThread(consumer, frozenset({changelog}), recovering(standby={log: -1})))
        assert await consumer.position(log) == 0
        consumer.seek(log, 4)
        await _seek_to_committed(ConsumerThread(consumer, frozenset({changelog}), recovering(active={log: None})))
        assert await consumer.position(log) == 4
    finally:
        await consumer.stop()
