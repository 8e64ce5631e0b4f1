"""One Kafka message's bytes -> its events.

A message carries one event (a JSON object), a batch as a JSON array, or a
batch as NDJSON (one object per line). Collectors batch so that Kafka's and
Faust's per-message cost is paid once per batch. A message larger than the
limit is refused before parsing, and so is one that holds no JSON object at
all (the dead-letter record keeps its bytes). Inside a batch, an item that is
not an object (a line that is not JSON, a number in the array) is refused
alone: it stays in its place in the list as a :class:`Refused`, so the events
around it are still processed and every item keeps its index. A leading UTF-8
byte order mark is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline.json_bytes import json_bytes

OVERSIZED = "oversized"
UNDECODABLE = "undecodable"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class DecodeError(Exception):
    reason: str  # OVERSIZED or UNDECODABLE
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Refused:
    """An item of a batch that is not an event: why, and its bytes (the NDJSON line; for an
    array item, the item written again)."""

    detail: str
    original: bytes


def decode_message(value: bytes | None, max_bytes: int) -> list:
    """Events of one message (dicts), with a :class:`Refused` in the place of each item that
    is not one. Raises DecodeError when the message as a whole is none of the three forms."""
    if value is None:
        raise DecodeError(UNDECODABLE, "empty message (no value)")
    size = len(value)
    if size > max_bytes:
        raise DecodeError(OVERSIZED, f"{size} bytes > limit {max_bytes}")
    if value[:3] == _BOM:
        value = value[3:]
    if b"\n" in value:
        # most likely NDJSON (a collector's batch): one parse per line, not a failed parse of
        # the whole message first; a pretty-printed document's first line is not JSON alone
        events = _ndjson_lines(value)
        if events is not None:
            return events
    try:
        whole = orjson.loads(value)
    except orjson.JSONDecodeError as first:
        return _ndjson(value, first)
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        refused = False
        for index, item in enumerate(whole):
            if not isinstance(item, dict):
                whole[index] = Refused(f"array item {index} is a {json_kind(item)}, not an object", json_bytes(item))
                refused = True
        if refused and all(item.__class__ is Refused for item in whole):
            raise DecodeError(UNDECODABLE, f"no item of the array is an event: {whole[0].detail}")
        return whole
    raise DecodeError(UNDECODABLE, f"a JSON {json_kind(whole)}, not an object or an array of objects")


def json_kind(value: object) -> str:
    """What a decoded JSON value is, as an error message names it (``null``, ``int``, ``list``)."""
    return "null" if value is None else type(value).__name__


def _ndjson_lines(value: bytes) -> list[dict] | None:
    """Events of an NDJSON message whose every non-blank line is a JSON object; None when
    it is not that (the caller then parses it whole, and names the problem if any)."""
    loads = orjson.loads
    events: list[dict] = []
    append = events.append
    try:
        for line in value.split(b"\n"):
            if line and not line.isspace():
                item = loads(line)
                if type(item) is not dict:
                    return None
                append(item)
    except orjson.JSONDecodeError:
        return None
    return events or None


def _ndjson(value: bytes, first: orjson.JSONDecodeError) -> list:
    """A message that is not one JSON document, read as NDJSON: each line that is not a JSON
    object is refused alone; when none is, the message is refused whole."""
    if b"\n" not in value.strip():
        raise DecodeError(UNDECODABLE, f"not JSON: {first}")
    events: list = []
    good = 0
    for number, line in enumerate(value.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            events.append(Refused(f"NDJSON line {number}: {error}", line))
            continue
        if not isinstance(item, dict):
            events.append(Refused(f"NDJSON line {number} is a {json_kind(item)}, not an object", line))
        else:
            events.append(item)
            good += 1
    if not good:
        raise DecodeError(UNDECODABLE, events[0].detail if events else "no JSON in the message")
    return events
