"""The two detection agents share one BatchDelivery and its OpenSearch sink: a batch is
acked only after its own alerts are stored, even when the other agent's flush took them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.stream.delivery import BatchDelivery, build_processor
from pipeline.stream.settings import PipelineSettings

from delivery_fakes import FakeTopic, SlowFirstBulk, shell_batch

ROOT = Path(__file__).resolve().parents[2]


async def test_a_batch_is_not_acked_while_its_alerts_sit_in_the_other_agents_flush():
    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1",
                                          "PEREGRINE_CONFIG_AUDIT": "false"})
    delivery = BatchDelivery(settings, build_processor(settings), alerts=FakeTopic(), deadletters=FakeTopic(), repartition=FakeTopic())
    client = delivery.sink.client = SlowFirstBulk()
    acked_a: list[int] = []
    acked_b: list[int] = []
    a = asyncio.create_task(delivery.run(shell_batch(settings.syscall_topic, range(0, 3), acked_a), stateful=False, lane="a"))
    b = asyncio.create_task(delivery.run(shell_batch(settings.syscall_topic, range(3, 6), acked_b), stateful=False, lane="b"))
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert len(client.bodies) == 1  # the first flush is held at the gate...
    assert acked_a == [] and acked_b == []  # ...and neither batch is acked meanwhile
    client.gate.set()
    await asyncio.wait_for(asyncio.gather(a, b), 10)
    assert await asyncio.wait_for(delivery.drain(), 10)
    assert sorted(acked_a + acked_b) == list(range(6))
    stored = b"".join(client.bodies)
    assert stored.count(b'"create"') == 6  # every alert went into a bulk before its batch was acked
