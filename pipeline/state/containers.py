"""Which containers the worker tracks, in least-recently-seen order.

The process-tree table holds one tree per container. This index bounds how
many: a container that has had no event for ``idle_ttl_s`` (processing time)
is dropped, and past ``max_containers`` the least recently seen goes. The
worker deletes the evicted containers' trees from the table (a tombstone in
the changelog, so a restarted worker does not recover them).

It lives in memory and is rebuilt from the table's keys when the worker's
partitions change (:meth:`retain` then :meth:`touch` with ``now``), so a
container recovered from the changelog that never sends another event still
expires. Each entry remembers its partition: a tree may only be deleted by
the worker that owns that partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    max_containers: int = 100_000
    idle_ttl_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Evicted:
    container_id: str
    partition: int
    reason: str  # IDLE or OVER_LIMIT


IDLE = "idle"
OVER_LIMIT = "over_limit"


class ContainerIndex:
    """container id -> (last seen, partition), oldest first (dict order)."""

    __slots__ = ("limits", "clock", "_seen")

    def __init__(self, limits: ContainerLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ContainerLimits()
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, container_id: str) -> bool:
        return container_id in self._seen

    def touch(self, container_id: str, partition: int, now: float | None = None) -> None:
        """The container had an event (now): it becomes the most recently seen."""
        seen = self._seen
        if container_id in seen:
            del seen[container_id]
        seen[container_id] = (self.clock() if now is None else now, partition)

    def evictions(self, now: float | None = None) -> list[Evicted]:
        """Remove and return the idle containers and those past the limit, oldest first."""
        now = self.clock() if now is None else now
        cutoff = now - self.limits.idle_ttl_s
        seen = self._seen
        out: list[Evicted] = []
        while seen:
            oldest = next(iter(seen))
            last, partition = seen[oldest]
            if last < cutoff:
                reason = IDLE
            elif len(seen) > self.limits.max_containers:
                reason = OVER_LIMIT
            else:
                break
            del seen[oldest]
            out.append(Evicted(oldest, partition, reason))
        return out

    def retain(self, partitions: Iterable[int]) -> list[str]:
        """Forget the containers of partitions this worker no longer owns (not evicted:
        their trees now belong to another worker). Returns the forgotten ids."""
        keep = set(partitions)
        gone = [cid for cid, (_, partition) in self._seen.items() if partition not in keep]
        for cid in gone:
            del self._seen[cid]
        return gone
