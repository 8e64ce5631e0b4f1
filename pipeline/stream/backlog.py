"""Which input partitions a worker owns and has not read to their end.

A regroup clock merges the events of every input partition, and one it has not
heard from yet can be told apart from one that does not exist only by the
worker that reads it: it has a next offset to read below the partition's high
watermark. The worker sends a behind record for each such partition before a
batch's forwards (pipeline/stream/regroup.py), so that a clock does not move
past a backlog it has not seen yet.

Where reading starts is known at each assignment, when the worker seeks
(pipeline/stream/rewind.py): the committed offset, or the partition's first
offset when the group has committed none. From then on the batches say how
far it got. A partition whose start is unknown, or whose high watermark the
consumer has not fetched yet, is not called behind: that is the clock's
start-up hold's case, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


class Backlog:
    """Per owned input partition ``(topic, partition)``: the next offset to read."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def started(self, offsets: Mapping[Any, int]) -> None:
        """An assignment: reading starts at these offsets (topic partition -> offset); what
        was known of other partitions is dropped (revoked, or sought again)."""
        self._next = {(tp[0], tp[1]): offset for tp, offset in offsets.items()}

    def took(self, topic: str, partition: int, offset: int) -> None:
        """A batch took the record at ``offset``."""
        key = (topic, partition)
        if offset >= self._next.get(key, -1):
            self._next[key] = offset + 1

    def behind(self, assigned: Iterable[Any], highwater: Callable[[Any], int | None]) -> list[tuple[str, int]]:
        """The ``assigned`` topic partitions whose next offset is below their high watermark
        (``highwater(tp)``: None while unknown)."""
        unread = []
        for tp in assigned:
            start = self._next.get((tp[0], tp[1]))
            if start is None:
                continue
            try:
                end = highwater(tp)
            except Exception:  # noqa: BLE001 - revoked meanwhile: the consumer no longer knows it
                continue
            if end is not None and start < end:
                unread.append((tp[0], tp[1]))
        return unread
