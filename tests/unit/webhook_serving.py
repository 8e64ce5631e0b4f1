"""The real receiver (pipeline.webhook.server.Receiver) on a loopback port, with a producer
that needs no Kafka: it keeps what it is sent."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from pipeline.webhook.server import Receiver
from pipeline.webhook.settings import Listen, WebhookSettings

EVENTLIST = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"a"},{"auditID":"b"}]}'


class KeepingProducer:
    def __init__(self) -> None:
        self.sent: list = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, records) -> None:
        self.sent.extend(records)

    async def ready(self) -> str | None:
        return None


def loopback_settings(**fields) -> WebhookSettings:
    return WebhookSettings(broker="unused:9092", topic="audit", listen=Listen("127.0.0.1", 0), **fields)


@contextlib.asynccontextmanager
async def serving(settings: WebhookSettings) -> AsyncIterator[Receiver]:
    receiver = Receiver(settings, producer=KeepingProducer())  # type: ignore[arg-type]
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
