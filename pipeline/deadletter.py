"""Dead letters: what the worker could not process, set aside with why and where.

A record names the reason (undecodable, oversized, schema, evaluation_error,
unknown_correlation: a regroup envelope for a correlation the worker does not regroup),
a human detail, the Kafka coordinates of the message (topic, partition,
offset) and the original bytes: as text when they are UTF-8, else base64.
For an event-level failure (schema, evaluation) inside a batch message,
``index`` says which event of the message, and ``original`` is that event.
The schema is schemas/deadletter.schema.json.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.json_bytes import json_bytes
from pipeline.record_bounds import MAX_KEY_BYTES, MAX_RECORD_BYTES, cut

UNDECODABLE = "undecodable"
OVERSIZED = "oversized"
SCHEMA = "schema"
EVALUATION_ERROR = "evaluation_error"
UNKNOWN_CORRELATION = "unknown_correlation"
REASONS = (UNDECODABLE, OVERSIZED, SCHEMA, EVALUATION_ERROR, UNKNOWN_CORRELATION)
MAX_KEPT_BYTES = 1_048_576  # an oversized message keeps at most its first MiB, less if the record would not fit
MAX_DETAIL_BYTES = 4096  # a detail can quote the value it refuses


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    original: bytes
    index: int | None = None

    def to_json(self) -> bytes:
        """The record, under :data:`MAX_RECORD_BYTES`: the original bytes kept are halved until
        it fits (``truncated`` says so; ``size`` is the original's), or the worker could not
        produce it and would stop on the same message at every restart."""
        kept = MAX_KEPT_BYTES
        while True:
            record = self._json(kept)
            if len(record) <= MAX_RECORD_BYTES or kept <= 1024:
                return record
            kept //= 2

    def _json(self, max_kept: int) -> bytes:
        kept = self.original[:max_kept]
        try:
            text: str | None = kept.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record: dict[str, Any] = {
            "reason": self.reason,
            "detail": cut(self.detail, MAX_DETAIL_BYTES),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "index": self.index,
            "key": cut(self.key.decode("utf-8", "replace"), MAX_KEY_BYTES) if self.key is not None else None,
            "size": len(self.original),
            "truncated": len(kept) < len(self.original),
            "encoding": "text" if text is not None else "base64",
            "original": text if text is not None else base64.b64encode(kept).decode("ascii"),
            "time": time.time_ns(),
        }
        return orjson.dumps(record)


def event_bytes(event: Any) -> bytes:
    return json_bytes(event)  # an event nested past what orjson writes, or with a 70-bit int, too


class DeadLetterCounts(Counter):
    """Dead letters per reason since start (also exported as Prometheus counters)."""
