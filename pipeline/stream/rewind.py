"""After a rebalance, stream partitions that never had an offset committed go back
to their beginning, and changelog partitions to the offset after the last one
recovery applied, so no record fetched and dropped during the rebalance is
skipped.

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
them: at least once, as a committed partition.

Changelog records are dropped the same way: a ``getmany`` that returns while
the flow is stopped drops everything it fetched, changelog records included,
and calls ``perform_seek``, which never moves a changelog partition (Faust
commits no offset for one). Recovery then waits for an offset the consumer is
already past, for ever: a worker taking over a killed worker's partition
logged "No event received for active tp ... since recovery start" until the
test gave up (its standby had read the one record; recovery sought back to it
and the fetch that returned it was dropped; once in CI, twice in two runs
here). So changelog partitions go back to the offset after the last one
recovery applied (Faust's own ``active_offsets``/``standby_offsets``): what
was dropped is fetched again, and what was not is skipped by recovery as
already seen. A partition recovery has no offset for yet is left alone:
recovery seeks it itself.

Where each stream partition's reading starts (its committed offset, or its
first one when rewound) goes to the hook :func:`install` is given: the
worker's :class:`~pipeline.stream.backlog.Backlog`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.stream import stale_fetch

log = logging.getLogger("peregrine.worker")

_on_started: Callable[[Mapping[Any, int]], None] | None = None  # see install()


def uncommitted_stream_partitions(committed: Mapping[Any, int | None], is_changelog: Any) -> list:
    """The partitions ``seek_to_committed`` did not move: no committed offset, or 0."""
    return [tp for tp, offset in committed.items() if not offset and not is_changelog(tp)]


def changelog_resume_offsets(recovery: Any) -> dict[Any, int]:
    """The offset to fetch next of each changelog partition Faust's recovery reads: the one
    after the last it applied (-1, nothing yet: 0, as recovery's own seek)."""
    resume: dict[Any, int] = {}
    for tps, offsets in ((recovery.standby_tps, recovery.standby_offsets), (recovery.active_tps, recovery.active_offsets)):
        for tp in tps:
            offset = offsets.get(tp)
            if offset is not None:
                resume[tp] = max(offset, -1) + 1
    return resume


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    # read on the app's loop, where recovery updates them; the seek runs on the consumer's
    changelogs = changelog_resume_offsets(self.consumer.app.tables.recovery)

    async def seek() -> Mapping[Any, int]:
        committed = await consumer.seek_to_committed()
        rewind = uncommitted_stream_partitions(committed, self.consumer._is_changelog_tp)
        if rewind:
            await consumer.seek_to_beginning(*rewind)
            stamps = stale_fetch.stamps_of(consumer._fetcher)  # records fetched before this are stale
            for tp in rewind:
                stamps.sought(tp)
            log.info("rewound %d stream partition(s) with no committed offset to their beginning", len(rewind))
        assigned = consumer.assignment()
        for tp, offset in changelogs.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        if _on_started is not None:  # after the seeks and their stamps: this awaits a broker's answer
            try:
                starts = {tp: offset for tp, offset in committed.items() if offset and not self.consumer._is_changelog_tp(tp)}
                if rewind:
                    starts.update(await consumer.beginning_offsets(rewind))
                _on_started(starts)
            except Exception:  # noqa: BLE001 - only the regroup clocks' knowledge of a backlog depends on it
                log.warning("could not read where the assigned partitions start; no behind records until the next assignment",
                            exc_info=True)
                _on_started({})
        return committed

    return await self.call_thread(seek)


def install(on_started: Callable[[Mapping[Any, int]], None] | None = None) -> None:
    """``on_started``: called, on the consumer's thread, with where each stream partition's
    reading starts after each assignment's seek."""
    global _on_started
    _on_started = on_started
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
