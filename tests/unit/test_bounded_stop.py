"""BoundedStop: a stopping app waits for unacked messages at most stop_wait_s, then abandons
the deliveries in flight and commits only what was acked; a rebalance keeps Faust's wait."""

from __future__ import annotations

import asyncio
import logging

from pipeline.stream.bounded_stop import BoundedStop


class FakeConsumer:
    def __init__(self, unacked: int) -> None:
        self._unacked_messages = {object() for _ in range(unacked)}
        self.acked_later: set = set()
        self.commits = 0
        self.final_commits = 0

    def _clean_unacked_messages(self) -> None:
        self._unacked_messages -= self.acked_later

    async def commit(self) -> None:
        self.commits += 1

    async def commit_and_end_transactions(self) -> None:
        self.final_commits += 1


class FaustLike:
    """What BoundedStop overrides: Faust's app stop and its unbounded wait."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.faust_waits = 0

    async def _stop_consumer(self) -> None:
        await self._consumer_wait_empty(self.consumer, logging.getLogger("test"))

    async def _consumer_wait_empty(self, consumer, logger) -> None:
        self.faust_waits += 1


class App(BoundedStop, FaustLike):
    stop_wait_s = 0.3


async def test_a_stop_that_cannot_deliver_abandons_after_the_bound_and_commits_only_the_acked(caplog):
    consumer = FakeConsumer(unacked=3)
    app = App(consumer)
    abandoned: list[bool] = []

    async def abandon() -> str:
        abandoned.append(True)
        return "opensearch"

    app.abandon_deliveries = abandon
    with caplog.at_level(logging.WARNING, "peregrine.stop"):
        await asyncio.wait_for(app._stop_consumer(), 5)
    assert abandoned == [True]
    assert consumer.final_commits == 1 and consumer.commits >= 1
    assert app.faust_waits == 0  # Faust's unbounded wait is not used at stop
    assert "stopping with 3 message(s) not delivered after 0.3s (waiting on opensearch)" in caplog.text


async def test_a_stop_whose_batches_are_delivered_in_time_abandons_nothing():
    consumer = FakeConsumer(unacked=2)
    app = App(consumer)
    app.stop_wait_s = 30
    abandoned: list[bool] = []

    async def abandon() -> None:
        abandoned.append(True)

    app.abandon_deliveries = abandon
    asyncio.get_running_loop().call_later(0.2, lambda: consumer.acked_later.update(consumer._unacked_messages))
    await asyncio.wait_for(app._stop_consumer(), 5)
    assert abandoned == [] and not consumer._unacked_messages and consumer.final_commits == 1


async def test_a_rebalance_keeps_faust_own_wait():
    consumer = FakeConsumer(unacked=1)
    app = App(consumer)
    await app._consumer_wait_empty(consumer, logging.getLogger("test"))
    assert app.faust_waits == 1 and consumer.final_commits == 0
