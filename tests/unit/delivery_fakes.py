"""Stand-ins for Faust's topics, messages and events and for the OpenSearch client, for
BatchDelivery's unit tests (the real-stack behaviour is in tests/integration)."""

from __future__ import annotations

import asyncio

import orjson


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


def count_processed(delivery) -> list[int]:
    """The offsets of the messages ``delivery``'s processor is given, in order (a list it fills)."""
    processed: list[int] = []
    steps = delivery.processor.steps

    def counting_steps(messages, store, every=32):
        processed.extend(m.offset for m in messages)
        return steps(messages, store, every)

    delivery.processor.steps = counting_steps
    return processed
