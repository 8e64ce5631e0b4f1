"""Correlation state: one JSON-able dict per (correlation, group key).

The state of a group is plain data (dicts, lists, strings, ints), so the same
dicts live in a Python dict in file mode and in a changelog-backed Faust
table in the worker, keyed by :func:`group_key`. A worker killed mid-sequence
gets its groups back from the changelog and goes on where it stopped.

Shapes (``"a"``: event time of the last alert or None; ``"s"``: alerts
suppressed since it; ``"d"``: the event time after which the group can no
longer match or throttle anything, i.e. when it may be dropped):

* sequence: ``{"p": [partial, ...], "a", "s", "d"}``, a partial being
  ``{"n": next step index, "f": first time, "l": last time, "e": [event, ...],
  "b": {bound name: value}}``;
* threshold: ``{"t": [event, ...], "a", "s", "d"}`` (at most ``count`` events, oldest first);
* distinct: ``{"v": {value key: event}, "a", "s", "d"}`` (at most ``count`` values).

An event record is ``{"id", "t", "sum", "step", "f": {field: value}}``.

:class:`GroupIndex` keeps, in memory, which keys exist, when each may be
dropped and which was touched last. It bounds the number of groups
(evicting the least recently touched) and lets :meth:`GroupIndex.expired`
find dead groups without scanning the store. After a restart it is rebuilt
from the store's keys and deadlines.
"""

from __future__ import annotations

import heapq
import json
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Any

State = dict[str, Any]
Store = MutableMapping[str, State]

KEY_SEPARATOR = "\x1f"


def group_key(correlation: str, values: tuple[Any, ...]) -> str:
    """The store key of a group: the correlation's name and the ``by`` values, as text."""
    return correlation + KEY_SEPARATOR + json.dumps(list(values), separators=(",", ":"), default=str)


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
    """Which groups are open: last-touched order (for ``max_groups``) and deadlines (for expiry)."""

    __slots__ = ("_touched", "_heap")

    def __init__(self) -> None:
        self._touched: OrderedDict[str, int] = OrderedDict()  # key -> deadline
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._touched)

    def __contains__(self, key: str) -> bool:
        return key in self._touched

    def keys(self) -> Iterator[str]:
        return iter(self._touched)

    def touch(self, key: str, deadline: int) -> None:
        previous = self._touched.pop(key, None)
        self._touched[key] = deadline
        if previous != deadline:
            heapq.heappush(self._heap, (deadline, key))
            if len(self._heap) > 4 * len(self._touched) + 64:
                self._heap = [(d, k) for k, d in self._touched.items()]
                heapq.heapify(self._heap)

    def remove(self, key: str) -> None:
        self._touched.pop(key, None)

    def oldest(self) -> str | None:
        """The least recently touched key (evicted first when there are too many groups)."""
        return next(iter(self._touched), None)

    def expired(self, watermark: int) -> list[str]:
        """Keys whose deadline is before ``watermark``; they are removed from the index."""
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] < watermark:
            deadline, key = heapq.heappop(heap)
            if self._touched.get(key) == deadline:
                del self._touched[key]
                out.append(key)
        return out

    @classmethod
    def rebuild(cls, store: Store) -> "GroupIndex":
        """The index of a store that already holds state (a worker after a restart)."""
        index = cls()
        for key, state in list(store.items()):
            if isinstance(state, dict):
                index.touch(key, int(state.get("d") or 0))
        return index


__all__ = ["GroupIndex", "State", "Store", "group_key", "split_key", "jsonable", "new_state"]
