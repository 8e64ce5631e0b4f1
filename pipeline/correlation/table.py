"""Correlation state in a Faust table whose values are raw bytes (the worker's app
uses ``value_serializer="raw"``): the ``MutableMapping[str, dict]`` the evaluator
takes, JSON-encoding each group's state.

Faust picks the partition of a table write (its changelog and RocksDB) from
the *current event*. The worker processes batches, so before evaluating an
event it calls :meth:`TableCorrelationStore.bind` with that event's Faust
event (``message.ref`` in pipeline/stream/batch.py); every read and write
then runs as if that event were current, as the process-tree store does.
Syscall correlations grouped by ``container.id`` are co-partitioned with the
syscall topic (keyed by container id), so a group's state lives in the
partition that receives its events, and comes back from the changelog when
the worker restarts or the partition moves (call the evaluator's
``reindex()`` after an assignment).
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson


class TableCorrelationStore(MutableMapping):
    def __init__(self, table: Any, current_event: contextvars.ContextVar | None = None) -> None:
        self.table = table
        if current_event is None:
            from faust.streams import _current_event as current_event  # type: ignore[no-redef]
        self._var = current_event
        self._ref: Any = None

    def bind(self, ref: Any) -> None:
        """The Faust event whose partition the next reads and writes belong to."""
        self._ref = ref

    def _with(self, fn):
        if self._ref is None:
            return fn()
        token = self._var.set(weakref.ref(self._ref))
        try:
            return fn()
        finally:
            self._var.reset(token)

    def __getitem__(self, key: str) -> dict:
        value = self._with(lambda: self.table.get(key))
        if value is None:
            raise KeyError(key)
        return orjson.loads(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._with(lambda: self.table.get(key))
        return default if value is None else orjson.loads(value)

    def __setitem__(self, key: str, state: dict) -> None:
        data = orjson.dumps(state)

        def write() -> None:
            self.table[key] = data

        self._with(write)

    def __delitem__(self, key: str) -> None:
        def delete() -> None:
            del self.table[key]

        self._with(delete)

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self._with(lambda: self.table.pop(key, None))
        return default if value is None else orjson.loads(value)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)


__all__ = ["TableCorrelationStore"]
