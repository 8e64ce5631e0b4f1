"""Correlation state: one JSON-able dict per (correlation, group key).

The state of a group is plain data (dicts, lists, strings, ints), so the same
dicts live in a Python dict in file mode and in a changelog-backed Faust
table in the worker, keyed by :func:`group_key`. A worker killed mid-sequence
gets its groups back from the changelog and goes on where it stopped.

Shapes (``"a"``: event time of the last alert or None; ``"s"``: alerts
suppressed since it; ``"d"``: the event time after which the group can no
longer match or throttle anything, i.e. when it may be dropped):

* sequence: ``{"p": [partial, ...], "h": [held, ...], "a", "s", "d"}``, a partial being
  ``{"n": next step index, "f": first time, "l": last time, "e": [event, ...],
  "b": {bound name: value}, "u": time of an until after it, "o": its next step's events must be older}``, and ``"h"`` the
  events held for an earlier step that may still arrive (:mod:`pipeline.correlation.held`);
* threshold and distinct: ``{"wb", "wt", "wh", "wx", "fh", "fn", "ft", "a", "s", "d"}``, the events
  counted (at most ``count``) as time and digest, a distinct count's values as digests
  (``"wv"``), the newest events' records (:mod:`pipeline.correlation.window`).

An event record is ``{"id", "t", "sum", "step", "f": {field: value}}``.

:class:`GroupIndex` keeps, in memory, which keys exist, when each may be
dropped and which was touched last. It bounds the number of groups
(evicting the least recently touched, whatever its clock) and lets
:meth:`GroupIndex.expired` find dead groups without scanning the store.
Each group belongs to one event-time *clock* (the worker keeps one per
table partition and source, ``peregrine scan`` one in all; see
:mod:`pipeline.correlation.evaluate`), and the deadlines are kept per clock,
so a clock's watermark expires only its own groups. After a restart it is
rebuilt from the store's keys, clocks and deadlines.
"""

from __future__ import annotations

import heapq
import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, MutableMapping
from typing import Any

State = dict[str, Any]
Store = MutableMapping[str, State]

KEY_SEPARATOR = "\x1f"


def group_key(correlation: str, values: tuple[Any, ...]) -> str:
    """The store key of a group: the correlation's name and the ``by`` values as a compact
    JSON list (what a changelog holds, so the text never changes). The usual values, plain
    ASCII strings and ints, are written directly: json.dumps was ~1.5 us of every event a
    correlation step matched."""
    parts = []
    for value in values:
        text = plain_json(value)
        if text is None:
            return correlation + KEY_SEPARATOR + json.dumps(list(values), separators=(",", ":"), default=str)
        parts.append(text)
    return correlation + KEY_SEPARATOR + "[" + ",".join(parts) + "]"


def plain_json(value: Any) -> str | None:
    """json.dumps(value) for a plain ASCII string (nothing to escape) or an int, written
    directly; None for anything else (the caller asks json.dumps)."""
    kind = type(value)
    if kind is str and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    if kind is int:
        return str(value)
    return None


def split_key(key: str) -> tuple[str, list[Any]]:
    name, _, values = key.partition(KEY_SEPARATOR)
    return name, json.loads(values) if values else []


def jsonable(value: Any) -> Any:
    """A field value as JSON data (lists of fields stay lists; other odd values become text)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def new_state() -> State:
    return {"a": None, "s": 0, "d": 0}


class GroupIndex:
    """Which groups are open: last-touched order (for ``max_groups``) and, per clock,
    deadlines (for expiry)."""

    __slots__ = ("_touched", "_heaps", "_heaped")

    def __init__(self) -> None:
        self._touched: OrderedDict[str, tuple[Hashable, int]] = OrderedDict()  # key -> (clock, deadline)
        self._heaps: dict[Hashable, list[tuple[int, str]]] = {}  # clock -> (deadline, key), stale ones included
        self._heaped = 0  # entries in all heaps

    def __len__(self) -> int:
        return len(self._touched)

    def __contains__(self, key: str) -> bool:
        return key in self._touched

    def keys(self) -> Iterator[str]:
        return iter(self._touched)

    def clocks(self) -> list[Hashable]:
        """The clocks that may still have groups to expire."""
        return list(self._heaps)

    def clock_of(self, key: str) -> Hashable:
        return self._touched[key][0]

    def touch(self, key: str, deadline: int, clock: Hashable = None) -> None:
        previous = self._touched.pop(key, None)
        entry = (clock, deadline)
        self._touched[key] = entry
        if previous != entry:
            heap = self._heaps.get(clock)
            if heap is None:
                heap = self._heaps[clock] = []
            heapq.heappush(heap, (deadline, key))
            self._heaped += 1
            if self._heaped > 4 * len(self._touched) + 64:
                self._compact()

    def _compact(self) -> None:
        heaps: dict[Hashable, list[tuple[int, str]]] = {}
        for key, (clock, deadline) in self._touched.items():
            heaps.setdefault(clock, []).append((deadline, key))
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = heaps
        self._heaped = len(self._touched)

    def remove(self, key: str) -> None:
        self._touched.pop(key, None)

    def oldest(self) -> str | None:
        """The least recently touched key (evicted first when there are too many groups)."""
        return next(iter(self._touched), None)

    def expired(self, watermark: int, clock: Hashable = None) -> list[str]:
        """Keys of ``clock`` whose deadline is before ``watermark`` (that clock's); they are
        removed from the index. Other clocks' groups are not looked at."""
        heap = self._heaps.get(clock)
        out: list[str] = []
        if not heap or heap[0][0] >= watermark:  # the usual call (one an event): nothing due
            return out
        touched = self._touched
        while heap and heap[0][0] < watermark:
            deadline, key = heapq.heappop(heap)
            self._heaped -= 1
            if touched.get(key) == (clock, deadline):
                del touched[key]
                out.append(key)
        if not heap:
            del self._heaps[clock]
        return out

    @classmethod
    def rebuild(cls, groups: Iterable[tuple[str, State, Hashable]]) -> "GroupIndex":
        """The index of groups that already exist (a worker after a restart or a rebalance):
        (key, state, clock) each."""
        index = cls()
        for key, state, clock in groups:
            if isinstance(state, dict):
                index.touch(key, int(state.get("d") or 0), clock)
        return index


def newest_time(state: State) -> int:
    """The newest event time a group's state records (0 when none): a lower bound of its
    clock's time when it was written, from which a recovered clock restarts."""
    newest = state.get("a") or 0
    for partial in state.get("p", ()):
        newest = max(newest, partial.get("l") or 0)
    for entry in state.get("h", ()):
        newest = max(newest, entry.get("t") or 0)
    times = state.get("wt")
    if times:
        newest = max(newest, state["wb"] + times[-1])
    newest = max(newest, state.get("ft") or 0)
    for entry in state.get("t", ()):  # a group an earlier Peregrine wrote (pipeline/correlation/window.py)
        newest = max(newest, entry.get("t") or 0)
    for entry in state.get("v", {}).values():
        newest = max(newest, entry.get("t") or 0)
    return newest if isinstance(newest, int) else 0


__all__ = ["GroupIndex", "State", "Store", "group_key", "split_key", "jsonable", "new_state", "newest_time"]
