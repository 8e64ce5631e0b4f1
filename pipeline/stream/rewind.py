"""After a rebalance, stream partitions that never had an offset committed go back
to their beginning, so no record fetched during the rebalance is skipped.

Faust's recovery ends with ``perform_seek``: every assigned partition is moved
back to its committed offset, because records fetched while the rebalance ran
are dropped (from the stream queues when the flow resumes, or by ``getmany``
while the flow is stopped) and must be fetched again. aiokafka's
``seek_to_committed`` only seeks a partition whose committed offset is above
0: a partition of a new consumer group, or one the group has not committed
yet, stays where aiokafka's fetcher got to. Records fetched and dropped in
that window were then never processed, and nothing said so: a worker of a
fresh two-worker group reported its partitions assigned and ready, its
consumer positions past the 21 records produced meanwhile, and 0 batches
(tests/integration/test_pipeline_failures.py's two-worker test, 3 times in 17
runs here).

:func:`install` makes Faust's worker consumer seek those partitions to the
beginning, which is where the group's ``auto_offset_reset=earliest`` starts
them: at least once, as a committed partition. Changelog partitions are left
alone: recovery seeks them to the offsets the tables hold.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("peregrine.worker")


def uncommitted_stream_partitions(committed: Mapping[Any, int | None], is_changelog: Any) -> list:
    """The partitions ``seek_to_committed`` did not move: no committed offset, or 0."""
    return [tp for tp, offset in committed.items() if not offset and not is_changelog(tp)]


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()

    async def seek() -> Mapping[Any, int]:
        committed = await consumer.seek_to_committed()
        rewind = uncommitted_stream_partitions(committed, self.consumer._is_changelog_tp)
        if rewind:
            await consumer.seek_to_beginning(*rewind)
            log.info("rewound %d stream partition(s) with no committed offset to their beginning", len(rewind))
        return committed

    return await self.call_thread(seek)


def install() -> None:
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
