"""The two detection agents share one BatchDelivery and its OpenSearch sink: a batch is
acked only after its own alerts are stored, even when the other agent's flush took them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from pipeline.stream.delivery import BatchDelivery, build_processor
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]


class FakeTopic:
    """Faust topic stand-in: send() gives a future that Kafka 'acks' on the next loop turn."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, key=None, value=None):
        self.sent.append((key, value))
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, None)
        return future


class FakeMessage:
    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, 0, offset, b"k", value

    def incref(self) -> None:
        pass


class FakeEvent:
    def __init__(self, message: FakeMessage, acked: list) -> None:
        self.message = message
        self._acked = acked

    def ack(self) -> None:
        self._acked.append(self.message.offset)


class SlowFirstBulk:
    """OpenSearch client stand-in whose first bulk waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.bodies: list[bytes] = []
        self.indices = self

    async def put_index_template(self, name, body):
        return {"acknowledged": True}

    async def bulk(self, body):
        first = not self.bodies
        self.bodies.append(body)
        if first:
            await self.gate.wait()
        return {"errors": False, "items": []}


def shell_batch(topic: str, offsets: range, acked: list) -> list[FakeEvent]:
    events = []
    for offset in offsets:
        event = {"evt.type": "execve", "evt.dir": "<", "evt.time": 1_700_000_000_000_000_000 + offset, "proc.pid": 100 + offset,
                 "proc.ppid": 1, "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": f"c{offset}"}
        events.append(FakeEvent(FakeMessage(topic, offset, orjson.dumps(event)), acked))
    return events


async def test_a_batch_is_not_acked_while_its_alerts_sit_in_the_other_agents_flush():
    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1",
                                          "PEREGRINE_CONFIG_AUDIT": "false"})
    delivery = BatchDelivery(settings, build_processor(settings), alerts=FakeTopic(), deadletters=FakeTopic(), repartition=FakeTopic())
    client = delivery.sink.client = SlowFirstBulk()
    acked_a: list[int] = []
    acked_b: list[int] = []
    a = asyncio.create_task(delivery.run(shell_batch(settings.syscall_topic, range(0, 3), acked_a), stateful=False))
    b = asyncio.create_task(delivery.run(shell_batch(settings.syscall_topic, range(3, 6), acked_b), stateful=False))
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert len(client.bodies) == 1  # the first flush is held at the gate...
    assert acked_a == [] and acked_b == []  # ...and neither batch is acked meanwhile
    client.gate.set()
    await asyncio.wait_for(asyncio.gather(a, b), 10)
    assert sorted(acked_a + acked_b) == list(range(6))
    stored = b"".join(client.bodies)
    assert stored.count(b'"create"') == 6  # every alert went into a bulk before its batch was acked
