"""A stand-in for the Faust event whose partition a table read or write belongs to.

Faust picks the partition of a table key (its changelog partition, its RocksDB
database) from the *current event*: ``event.message.partition``, after
checking that ``event.message.topic`` has as many partitions as the table's
changelog. The worker reads and writes table keys outside Faust's own
iteration (whole batches, expiry, eviction), so it sets the current event to
one of these, naming the changelog topic itself so that the check holds
whatever topic the batch came from.
"""

from __future__ import annotations

import contextvars
import weakref
from typing import Any, Callable


class PartitionEvent:
    """What Faust reads of an event to place a table key: ``message.partition`` and ``message.topic``."""

    __slots__ = ("message", "partition", "topic", "__weakref__")

    def __init__(self, partition: int, topic: str) -> None:
        self.message = self
        self.partition = partition
        self.topic = topic


def faust_current_event() -> contextvars.ContextVar:
    from faust.streams import _current_event

    return _current_event


def run_as(var: contextvars.ContextVar, event: Any, fn: Callable[[], Any]) -> Any:
    """``fn()`` with ``event`` as Faust's current event (None: no current event)."""
    token = var.set(weakref.ref(event) if event is not None else None)
    try:
        return fn()
    finally:
        var.reset(token)


__all__ = ["PartitionEvent", "faust_current_event", "run_as"]
