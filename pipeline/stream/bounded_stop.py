"""A worker's stop and its partition revokes end even when a batch cannot be
delivered (OpenSearch away).

Faust stops an app, and revokes its partitions in a rebalance, by first
waiting until every message its agents have taken is acked
(``stream_wait_empty``). Peregrine acks a batch once its alerts are stored, so
while OpenSearch is away that wait never ended: SIGTERM (or Ctrl-C) left the
worker retrying its bulk request until it was killed, and a rebalance (a
worker joining or leaving) kept the worker in its revoke until Kafka dropped
it from the group at the rebalance timeout (60 s), the whole group stalled
meanwhile.

:class:`BoundedStop` (a mixin for the Faust app) gives that wait
``stop_wait_s`` at a stop, and ``revoke_wait_s`` (PEREGRINE_REVOKE_WAIT_S) in
a revoke, where it waits only for the messages of the revoked partitions.
Then those messages are abandoned:

- each gets one more reference that is never released, so no later ack (the
  delivery that was cancelled, ``take_events`` acking the batch it handed
  out) can make Faust commit an offset this worker gave up;
- they leave Faust's set of unacked messages, so neither this wait nor a
  later one (the next rebalance, the stop) waits for them again;
- the app's ``abandon_deliveries`` callback cancels the deliveries whose
  messages are all abandoned (their alerts leave the sink), a batch that
  was waiting for one of them is not delivered, and the agents drop
  abandoned messages still in their take buffers unprocessed
  (pipeline/stream/delivery.py). A batch with a message of a partition that
  was not revoked is not abandoned.

What was acked is committed, and the stop or the rebalance goes on. The
abandoned messages' offsets are not committed: whichever worker next owns
their partitions reads them again from the committed offset (at the end of
every rebalance Faust seeks each assigned partition there, this worker's own
included: pipeline/stream/rewind.py) and processes them again (at least once;
an alert keeps its id, so OpenSearch stores it once).

Messages of partitions a revoke leaves with the worker keep Faust's own wait
(with aiokafka's eager rebalancing a revoke takes every partition, so there
are none).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Collection

log = logging.getLogger("peregrine.stop")

STOP_WAIT_S = 10.0  # how long a stopping worker waits for its batches in flight to be delivered
REVOKE_WAIT_S = 5.0  # how long a revoke waits for the revoked partitions' batches in flight (PEREGRINE_REVOKE_WAIT_S)


class BoundedStop:
    stop_wait_s: float = STOP_WAIT_S
    revoke_wait_s: float = REVOKE_WAIT_S
    # cancels the deliveries in flight whose messages are all among those given (their messages
    # stay unacked); returns what they waited on
    abandon_deliveries: Callable[[Collection[Any]], Awaitable[str | None]] | None = None
    _stopping_consumer: bool = False
    _revoking: frozenset | None = None  # the partitions of the revoke under way

    async def _stop_consumer(self) -> None:
        self._stopping_consumer = True
        await super()._stop_consumer()  # type: ignore[misc]

    async def _on_partitions_revoked(self, revoked: Any) -> None:
        self._revoking = frozenset(revoked)
        try:
            await super()._on_partitions_revoked(revoked)  # type: ignore[misc]
        finally:
            self._revoking = None

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        revoked = self._revoking
        if self._stopping_consumer:
            bound, what = self.stop_wait_s, "stopping with %d message(s)"
        elif revoked is not None:
            bound, what = self.revoke_wait_s, "rebalancing with %d message(s) of the revoked partitions"
        else:
            await super()._consumer_wait_empty(consumer, logger)  # type: ignore[misc]
            return
        # Faust's wait_empty, bounded (it cannot be cancelled: its ack wait swallows the cancellation)
        logger.info("Wait for streams (at most %gs)...", bound)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while True:
            consumer._clean_unacked_messages()  # drops the acked ones
            held = [m for m in consumer._unacked_messages if revoked is None or m.tp in revoked]
            if not held or loop.time() >= deadline:
                break
            await consumer.commit()
            await asyncio.sleep(0.1)
        if held:
            for message in held:
                message.incref()  # for good: a later ack of it can never be the final one
            consumer._unacked_messages.difference_update(held)
            waiting_on = await self.abandon_deliveries(held) if self.abandon_deliveries is not None else None
            log.warning(what + " not delivered after %gs%s: their offsets stay uncommitted, "
                        "so they are processed again when their partitions are next assigned",
                        len(held), bound, f" (waiting on {waiting_on})" if waiting_on else "")
        if self._stopping_consumer:
            await consumer.commit_and_end_transactions()  # what was acked
        else:
            # what is left belongs to partitions the revoke keeps here: Faust's own wait, then its commit
            await super()._consumer_wait_empty(consumer, logger)  # type: ignore[misc]
