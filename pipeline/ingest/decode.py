"""One Kafka message's bytes -> its events.

A message carries one event (a JSON object), a batch as a JSON array, or a
batch as NDJSON (one object per line). Collectors batch so that Kafka's and
Faust's per-message cost is paid once per batch. A message larger than the
limit is refused before parsing; anything that is not JSON objects is
refused whole (the dead-letter record keeps its bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

OVERSIZED = "oversized"
UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class DecodeError(Exception):
    reason: str  # OVERSIZED or UNDECODABLE
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def decode_message(value: bytes | None, max_bytes: int) -> list[dict]:
    """Events of one message. Raises DecodeError."""
    if value is None:
        raise DecodeError(UNDECODABLE, "empty message (no value)")
    size = len(value)
    if size > max_bytes:
        raise DecodeError(OVERSIZED, f"{size} bytes > limit {max_bytes}")
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
        for index, item in enumerate(whole):
            if not isinstance(item, dict):
                raise DecodeError(UNDECODABLE, f"array item {index} is a {type(item).__name__}, not an object")
        return whole
    raise DecodeError(UNDECODABLE, f"a JSON {type(whole).__name__}, not an object or an array of objects")


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


def _ndjson(value: bytes, first: orjson.JSONDecodeError) -> list[dict]:
    if b"\n" not in value.strip():
        raise DecodeError(UNDECODABLE, f"not JSON: {first}")
    events: list[dict] = []
    for number, line in enumerate(value.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise DecodeError(UNDECODABLE, f"NDJSON line {number}: {error}") from None
        if not isinstance(item, dict):
            raise DecodeError(UNDECODABLE, f"NDJSON line {number} is a {type(item).__name__}, not an object")
        events.append(item)
    return events
