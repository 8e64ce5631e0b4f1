"""The OpenSearch sink's retry schedule: while OpenSearch is unavailable it waits twice as long
each time, up to its cap, plus up to a tenth (so that the workers one outage held do not all
come back at the same instant), and keeps the alerts until they are stored."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.sinks.opensearch import AlertSink


class DownThenUp:
    """A client whose bulk fails ``failures`` times (connection refused), then stores all."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bulks = 0

    async def bulk(self, body: bytes) -> dict:
        self.bulks += 1
        if self.bulks <= self.failures:
            raise ConnectionRefusedError("connection refused")
        return {"errors": False, "items": []}


async def test_retries_back_off_doubling_to_the_cap_with_a_little_jitter(monkeypatch):
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    notes: list[str] = []
    sink = AlertSink("http://127.0.0.1:1", "peregrine-alerts-", backoff_initial_s=0.5, backoff_max_s=4.0,
                     client=DownThenUp(failures=7), on_retry=notes.append)
    sink.add("a-1", 1_700_000_000 * 10**9, b'{"rule":"r"}')
    assert await sink.flush() == []
    assert sink.stored == 1 and sink.retries == 7 and len(notes) == 7
    base = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(b <= d <= b * 1.1 for b, d in zip(base, slept, strict=True)), slept
    assert len(set(slept[3:])) > 1  # the jitter is in the sleep, not only in the message
    for note, delay in zip(notes, slept):
        assert note.startswith("OpenSearch at http://127.0.0.1:1 unavailable (ConnectionRefusedError") and f"retrying in {delay:.1f}s" in note


@pytest.mark.parametrize("failures", [0, 1])
async def test_the_alerts_are_held_until_stored(monkeypatch, failures):
    async def sleep(delay: float) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", sleep)
    client = DownThenUp(failures)
    sink = AlertSink("http://127.0.0.1:1", "p-", client=client)
    sink.add("a-1", 0, b"{}")
    sink.add("a-2", 0, b"{}")
    await sink.flush()
    assert (sink.stored, len(sink), client.bulks) == (2, 0, failures + 1)
