"""A worker's stop ends even when a batch cannot be delivered (OpenSearch away).

Faust stops an app by first waiting until every message its agents have
taken is acked (``stream_wait_empty``), and only then stops the agents.
Peregrine acks a batch once its alerts are stored, so while OpenSearch is
away that wait never ended: SIGTERM (or Ctrl-C) left the worker retrying
its bulk request until it was killed.

:class:`BoundedStop` (a mixin for the Faust app) gives that wait
``stop_wait_s``. Then the deliveries still in flight are abandoned (the
app's ``abandon_deliveries`` callback), what was acked is committed, and
the stop goes on. The abandoned messages' offsets are not committed:
whichever worker next owns their partitions processes them again (at least
once; an alert keeps its id, so OpenSearch stores it once).

Only the stop is bounded. A rebalance keeps Faust's own wait, which its
flight recorder reports on: a revoked partition's batch is delivered and
committed by the worker that processed it. While OpenSearch is away that
worker stays in its revoke until Kafka drops it from the group (the
rebalance timeout); the others then take its partitions and process its
unacked batch again (tests/integration/test_pipeline_failures.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger("peregrine.stop")

STOP_WAIT_S = 10.0  # how long a stopping worker waits for its batches in flight to be delivered


class BoundedStop:
    stop_wait_s: float = STOP_WAIT_S
    # cancels the deliveries in flight (their messages stay unacked); returns what they waited on
    abandon_deliveries: Callable[[], Awaitable[str | None]] | None = None
    _stopping_consumer: bool = False

    async def _stop_consumer(self) -> None:
        self._stopping_consumer = True
        await super()._stop_consumer()  # type: ignore[misc]

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self._stopping_consumer:  # a rebalance: Faust's own wait
            await super()._consumer_wait_empty(consumer, logger)  # type: ignore[misc]
            return
        # Faust's wait_empty, bounded (it cannot be cancelled: its ack wait swallows the cancellation)
        logger.info("Wait for streams (at most %gs)...", self.stop_wait_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_wait_s
        while True:
            consumer._clean_unacked_messages()  # drops the acked ones
            if not consumer._unacked_messages or loop.time() >= deadline:
                break
            await consumer.commit()
            await asyncio.sleep(0.1)
        unacked = len(consumer._unacked_messages)
        if unacked:
            waiting_on = await self.abandon_deliveries() if self.abandon_deliveries is not None else None
            log.warning("stopping with %d message(s) not delivered after %gs%s: their offsets stay uncommitted, "
                        "so they are processed again when their partitions are next assigned",
                        unacked, self.stop_wait_s, f" (waiting on {waiting_on})" if waiting_on else "")
        await consumer.commit_and_end_transactions()  # what was acked
