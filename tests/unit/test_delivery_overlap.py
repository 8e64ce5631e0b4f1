"""One agent's batches: batch N+1 is processed while batch N waits for its acks, but
delivered only after N, and no batch is acked before its alerts are stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.stream.delivery import BatchDelivery, build_processor
from pipeline.stream.settings import PipelineSettings

from delivery_fakes import FakeTopic, SlowFirstBulk, shell_batch, count_processed

ROOT = Path(__file__).resolve().parents[2]


def make_delivery() -> tuple[BatchDelivery, FakeTopic, SlowFirstBulk]:
    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1",
                                          "PEREGRINE_CONFIG_AUDIT": "false"})
    alerts = FakeTopic()
    delivery = BatchDelivery(settings, build_processor(settings), alerts=alerts, deadletters=FakeTopic(), repartition=FakeTopic())
    client = delivery.sink.client = SlowFirstBulk()
    return delivery, alerts, client


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0.01)


async def test_the_next_batch_is_processed_while_the_previous_one_waits_for_opensearch():
    delivery, alerts, client = make_delivery()
    topic = delivery.settings.syscall_topic
    acked: list[int] = []
    processed = count_processed(delivery)
    await asyncio.wait_for(delivery.run(shell_batch(topic, range(0, 3), acked), stateful=False), 5)  # returns: delivering
    await settle()
    assert len(client.bodies) == 1 and acked == []  # batch 1's flush held at the gate, nothing acked

    second = asyncio.create_task(delivery.run(shell_batch(topic, range(3, 6), acked), stateful=False))
    await settle()
    assert processed == list(range(6))  # batch 2 was processed meanwhile...
    assert not second.done()  # ...but waits for batch 1's delivery before starting its own
    assert [key for key, _ in alerts.sent] == [b"c0", b"c1", b"c2"]  # and produced nothing yet
    assert acked == []

    client.gate.set()
    await asyncio.wait_for(second, 5)
    assert await asyncio.wait_for(delivery.drain(), 5)
    assert acked == list(range(6))
    assert [key for key, _ in alerts.sent] == [f"c{i}".encode() for i in range(6)]  # alerts keep the batches' order
    assert b"".join(client.bodies).count(b'"create"') == 6


async def test_drain_gives_up_after_its_timeout_and_leaves_the_batch_unacked():
    delivery, _, client = make_delivery()
    acked: list[int] = []
    await delivery.run(shell_batch(delivery.settings.syscall_topic, range(0, 3), acked), stateful=False)
    assert await delivery.drain(timeout=0.2) is False  # OpenSearch never answers the first bulk
    assert acked == []  # processed again after the restart, never acked unstored
    assert await delivery.drain() is True  # nothing left in flight
    client.gate.set()
