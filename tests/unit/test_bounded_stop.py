"""BoundedStop: a stopping app waits for unacked messages at most stop_wait_s, a revoke at most
revoke_wait_s for those of the revoked partitions; then those messages are abandoned (the
deliveries holding them cancelled, out of Faust's unacked set, never acked again) and only what
was acked is committed. Outside a stop or a revoke, and for partitions a revoke keeps, Faust's
own wait stays."""

from __future__ import annotations

import asyncio
import logging
import weakref

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from pipeline.stream.bounded_stop import BoundedStop

REVOKED, KEPT = TP("events", 0), TP("events", 1)


def message(tp: TP, offset: int) -> ConsumerMessage:
    """A message as Faust's stream hands it out: one reference from the stream, one from our hold."""
    m = ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
    m.incref(2)
    return m


class FakeConsumer:
    """What the wait uses of Faust's consumer; ``ack`` is Faust's final ack (it commits the offset)."""

    def __init__(self, messages: list) -> None:
        self.messages = messages  # strong references: Faust's unacked set is weak
        self._unacked_messages: weakref.WeakSet = weakref.WeakSet(messages)
        self.final_acks: list = []
        self.commits = 0
        self.final_commits = 0
        self.faust_waits = 0

    def ack(self, m) -> bool:
        self.final_acks.append(m)
        self._unacked_messages.discard(m)
        return True

    def deliver(self, messages: list) -> None:
        """Our delivery's release and take_events's ack of each message."""
        for m in messages:
            m.ack(self)
            m.ack(self)

    def _clean_unacked_messages(self) -> None:
        self._unacked_messages -= {m for m in self._unacked_messages if m.acked}

    async def commit(self) -> None:
        self.commits += 1

    async def commit_and_end_transactions(self) -> None:
        self.final_commits += 1


class FaustLike:
    """What BoundedStop overrides: Faust's app stop, its revoke and its unbounded wait."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.left_for_faust: list = []

    async def _stop_consumer(self) -> None:
        await self._consumer_wait_empty(self.consumer, logging.getLogger("test"))

    async def _on_partitions_revoked(self, revoked) -> None:
        await self._consumer_wait_empty(self.consumer, logging.getLogger("test"))

    async def _consumer_wait_empty(self, consumer, logger) -> None:
        consumer.faust_waits += 1
        consumer._clean_unacked_messages()
        self.left_for_faust = sorted(m.offset for m in consumer._unacked_messages)
        await consumer.commit_and_end_transactions()


class App(BoundedStop, FaustLike):
    stop_wait_s = 0.3
    revoke_wait_s = 0.3

    def __init__(self, consumer: FakeConsumer) -> None:
        super().__init__(consumer)
        self.abandoned: list = []

        async def abandon(messages) -> str:
            self.abandoned.append(sorted(m.offset for m in messages))
            return "opensearch"

        self.abandon_deliveries = abandon


async def test_a_stop_that_cannot_deliver_abandons_after_the_bound_and_commits_only_the_acked(caplog):
    messages = [message(REVOKED, n) for n in range(3)]
    consumer = FakeConsumer(messages)
    app = App(consumer)
    with caplog.at_level(logging.WARNING, "peregrine.stop"):
        await asyncio.wait_for(app._stop_consumer(), 5)
    assert app.abandoned == [[0, 1, 2]]
    assert consumer.final_commits == 1 and consumer.commits >= 1
    assert consumer.faust_waits == 0  # Faust's unbounded wait is not used at stop
    assert not consumer._unacked_messages
    assert "stopping with 3 message(s) not delivered after 0.3s (waiting on opensearch)" in caplog.text


async def test_a_stop_whose_batches_are_delivered_in_time_abandons_nothing():
    messages = [message(REVOKED, n) for n in range(2)]
    consumer = FakeConsumer(messages)
    app = App(consumer)
    app.stop_wait_s = 30
    asyncio.get_running_loop().call_later(0.2, consumer.deliver, messages)
    await asyncio.wait_for(app._stop_consumer(), 5)
    assert app.abandoned == [] and not consumer._unacked_messages and consumer.final_commits == 1
    assert consumer.final_acks == messages  # delivered: committed


async def test_a_rebalance_wait_outside_a_revoke_is_faust_own():
    consumer = FakeConsumer([message(REVOKED, 0)])
    app = App(consumer)
    await app._consumer_wait_empty(consumer, logging.getLogger("test"))
    assert consumer.faust_waits == 1 and app.abandoned == []


async def test_a_revoke_that_cannot_deliver_abandons_the_revoked_partitions_messages_once_after_the_bound(caplog):
    revoked = [message(REVOKED, n) for n in range(3)]
    consumer = FakeConsumer(revoked)
    app = App(consumer)
    with caplog.at_level(logging.WARNING, "peregrine.stop"):
        await asyncio.wait_for(app._on_partitions_revoked({REVOKED}), 5)  # used to wait until they were acked
    assert app.abandoned == [[0, 1, 2]]
    assert not consumer._unacked_messages  # no later wait (the next rebalance, the stop) waits for them again
    assert consumer.faust_waits == 1 and app.left_for_faust == []  # Faust's wait ends at once, and commits what was acked
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["rebalancing with 3 message(s) of the revoked partitions not delivered after 0.3s (waiting on opensearch): "
                        "their offsets stay uncommitted, so they are processed again when their partitions are next assigned"]
    assert app._revoking is None  # the next wait is not a revoke's


async def test_an_abandoned_message_is_never_acked_for_good_so_its_offset_is_never_committed():
    revoked = [message(REVOKED, n) for n in range(2)]
    consumer = FakeConsumer(revoked)
    app = App(consumer)
    await asyncio.wait_for(app._on_partitions_revoked({REVOKED}), 5)
    consumer.deliver(revoked)  # a delivery that ends after all, take_events's ack of the batch it handed out
    assert consumer.final_acks == [] and not any(m.acked for m in revoked)


async def test_a_revoke_neither_waits_for_nor_abandons_the_partitions_it_keeps():
    kept = [message(KEPT, n) for n in range(2)]
    revoked = [message(REVOKED, 10)]
    consumer = FakeConsumer(kept + revoked)
    app = App(consumer)
    await asyncio.wait_for(app._on_partitions_revoked({REVOKED}), 5)
    assert app.abandoned == [[10]]
    assert app.left_for_faust == [0, 1]  # Faust's own wait: the kept partition's batch is delivered and committed
    consumer.deliver(kept)
    assert consumer.final_acks == kept


async def test_a_revoke_with_nothing_of_its_partitions_in_flight_waits_for_nothing():
    consumer = FakeConsumer([message(KEPT, 0)])
    app = App(consumer)
    app.revoke_wait_s = 30
    await asyncio.wait_for(app._on_partitions_revoked({REVOKED}), 1)
    assert app.abandoned == [] and app.left_for_faust == [0]


async def test_a_revoke_whose_batches_are_delivered_in_time_abandons_nothing():
    revoked = [message(REVOKED, n) for n in range(2)]
    consumer = FakeConsumer(revoked)
    app = App(consumer)
    app.revoke_wait_s = 30
    asyncio.get_running_loop().call_later(0.2, consumer.deliver, revoked)
    await asyncio.wait_for(app._on_partitions_revoked({REVOKED}), 5)
    assert app.abandoned == [] and consumer.final_acks == revoked and app.left_for_faust == []
