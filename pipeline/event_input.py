"""Events from files or stdin: JSON lines, a JSON array, a K8s audit ``EventList``
(also one per line, as the audit webhook posts them) or CloudTrail's ``{"Records": [...]}``.

Each record says where it came from (file and line) so a malformed line can be
reported and skipped while the rest is read. A whole-document parse is tried
first (pretty-printed arrays and EventLists span many lines); when that fails,
the input is read line by line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import orjson

STDIN = "-"


@dataclass(frozen=True, slots=True)
class Where:
    path: str
    line: int
    item: int | None = None  # index inside an array or EventList on that line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" + (f" (item {self.item})" if self.item is not None else "")


@dataclass(frozen=True, slots=True)
class EventRecord:
    event: dict
    where: Where
    source_hint: str | None = None  # what the container says (EventList -> k8s_audit)


@dataclass(frozen=True, slots=True)
class BadRecord:
    message: str
    where: Where


def _expand(value: Any, where: Where) -> Iterator[EventRecord | BadRecord]:
    if isinstance(value, dict):
        items = value.get("items")
        if value.get("kind") == "EventList" and isinstance(items, list):
            yield from _items(items, where, "k8s_audit")
            return
        records = value.get("Records")
        if isinstance(records, list) and "eventName" not in value:
            yield from _items(records, where, "aws_cloudtrail")
            return
        yield EventRecord(value, where)
    elif isinstance(value, list):
        yield from _items(value, where, None)
    else:
        yield BadRecord(f"not a JSON object (got {type(value).__name__})", where)


def _items(items: list, where: Where, hint: str | None) -> Iterator[EventRecord | BadRecord]:
    for index, item in enumerate(items):
        at = Where(where.path, where.line, index)
        if isinstance(item, dict):
            yield EventRecord(item, at, hint)
        else:
            yield BadRecord(f"not a JSON object (got {type(item).__name__})", at)


def read_events(path: str, stream: BinaryIO | None = None) -> Iterator[EventRecord | BadRecord]:
    """Records of one input; ``path`` '-' reads ``stream`` (default: stdin). Raises OSError."""
    name = "<stdin>" if path == STDIN else path
    if path == STDIN:
        data = (stream or sys.stdin.buffer).read()
    else:
        with open(path, "rb") as handle:
            data = handle.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = _LINES
    if whole is not _LINES:
        yield from _expand(whole, Where(name, _first_line(data)))
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield BadRecord(f"malformed JSON: {error}", Where(name, number))
            continue
        yield from _expand(value, Where(name, number))


_LINES = object()


def _first_line(data: bytes) -> int:
    """1-based line of the first non-blank byte."""
    stripped = data.lstrip()
    return data[: len(data) - len(stripped)].count(b"\n") + 1
