"""The alert record: one rule matched one event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.rules.model import Priority


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything Falco puts in an alert, plus a deterministic ``uuid``.

    ``output`` is Falco's full text line (time, priority, formatted output);
    ``message`` is the formatted rule output alone. ``output_fields`` maps each
    ``%field`` of the output, as written, to its JSON value (None when the
    event does not carry it), plus ``evt.time`` in nanoseconds, as Falco does.
    """

    uuid: str
    time_ns: int
    rule: str
    priority: Priority
    source: str
    output: str
    message: str
    output_fields: Mapping[str, Any]
    tags: tuple[str, ...]
    hostname: str
