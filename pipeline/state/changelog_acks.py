"""A Faust table whose changelog records can be awaited until Kafka has them.

A table write in Faust is a changelog record put in the producer's buffer
(``send_soon``), produced later by a background task. Before it commits
offsets, Faust flushes that buffer, but ``ProducerBuffer.flush`` gives up as
soon as one record has taken more than 0.1 s to be handed to the Kafka client
(a produce waiting for metadata, or for the partition's batch in flight, on a
loaded broker), and the offsets are committed all the same. A worker killed
then comes back to offsets past events whose state never reached the
changelog: the new owner recovers the table without them, and the events are
not read again. Under the chaos test (tests/integration/test_pipeline_chaos.py)
that lost one count of a threshold fed over many batches.

:class:`AckedChangelogTable` keeps the futures of its changelog records until
Kafka acknowledges them (acks=all, as the worker's producer is configured);
the delivery (pipeline/stream/delivery.py) awaits :meth:`unacked_changelog`
before it releases a batch's messages, so an offset is committed only after
the state changes made by the events before it are in the changelog.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust


class AckedChangelogTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked: set[asyncio.Future] = set()

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)
        if not future.done():
            self._unacked.add(future)
            future.add_done_callback(self._unacked.discard)
        return future

    def unacked_changelog(self) -> list[asyncio.Future]:
        """The changelog records written so far that Kafka has not acknowledged (each a future
        that ends when it does, or raises when the producer gave the record up)."""
        return list(self._unacked)


__all__ = ["AckedChangelogTable"]
