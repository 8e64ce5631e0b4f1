"""The real receiver (pipeline.webhook.server.Receiver) on a loopback port, with a producer
that needs no Kafka: it keeps what it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from pathlib import Path
from typing import AsyncIterator, Callable

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


def post_bytes(body: bytes = EVENTLIST, path: str = "/k8s-audit") -> bytes:
    """A whole POST of ``body`` as it goes on the wire (HTTP/1.1: the connection stays open)."""
    return (f"POST {path} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_answer(reader: asyncio.StreamReader, within_s: float = 20.0) -> tuple[int, bytes]:
    """(status, body) of one answer read off a raw connection, which stays open."""
    status, _, body = await read_answer_and_headers(reader, within_s)
    return status, body


async def read_answer_and_headers(reader: asyncio.StreamReader, within_s: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with their names in lower case, body) of one answer read off a raw
    connection, which stays open."""
    async def read() -> tuple[int, dict[str, str], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        return int(status_line.split(" ", 2)[1]), headers, await reader.readexactly(int(headers["content-length"]))

    return await asyncio.wait_for(read(), within_s)


async def hung_up_within(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """What the server sent until it closed the connection (a reset counts as closed); fails
    if it kept the connection open ``within_s``."""
    async def rest() -> bytes:
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received

    try:
        return await asyncio.wait_for(rest(), within_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within_s}s") from None


async def until(condition: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
    """Wait for the server (in this event loop) to reach ``condition``; fail after ``within_s``."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), within_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {within_s}s: {what}") from None


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made with the openssl CLI."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=webhook",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))
