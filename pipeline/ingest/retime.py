"""Move recorded events to the present, keeping their spacing.

A recorded attack (the demo's, the atelier's) carries the times it was
recorded at. Replayed as it is, its alerts land in that day's index
(``peregrine-alerts-2025.11.22``), outside a dashboard's "last 24 hours" and
``peregrine alerts report``'s default range, and the first retention run
deletes them. :func:`retimed` shifts every event by one offset, so the events
keep their order and their gaps, which correlation windows (``maxspan``,
``within``) measure; ``peregrine replay --now`` and ``peregrine demo`` take
the offset that makes the recording end now (:func:`offset_to_end_at`), so
that no event lies in the future of the views that look at "the last hour".

The offset is a whole number of seconds: a CloudTrail ``eventTime`` has no
fraction, and a shift that kept the gaps exactly must not need one. Each time
keeps its form: ``evt.time`` as an int stays an int (a numeric string a
numeric string), an RFC 3339 time stays one with as many fraction digits as
it had, in UTC. Only the fields the pipeline reads an event's time from are
moved (:data:`pipeline.alerts.falco_json.TIME_KEYS`); an event without any is
left as it is.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable

from pipeline.alerts.falco_json import TIME_KEYS, parse_rfc3339_ns

_SECOND = 1_000_000_000
_FRACTION = re.compile(r"\.(\d+)")


def _as_ns(value: Any) -> int | None:
    """A time in a form :func:`shifted` writes back (an int, a digit string, RFC 3339), else None."""
    if value.__class__ is int:
        return value if value > 0 else None
    if value.__class__ is str:
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text) or None
        return parse_rfc3339_ns(text)
    return None


def _rfc3339(ns: int, digits: int) -> str:
    seconds, fraction = divmod(ns, _SECOND)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{fraction:09d}"[:digits].ljust(digits, "0")
    return text + "Z"


def shifted(value: Any, offset_ns: int) -> Any:
    """``value`` (an event time in one of its forms) moved by ``offset_ns``, in the same form;
    a value that is not a time is returned unchanged."""
    ns = _as_ns(value)
    if ns is None:
        return value
    moved = ns + offset_ns
    if value.__class__ is int:
        return moved
    text = value.strip()
    if text.isascii() and text.isdigit():
        return str(moved)
    fraction = _FRACTION.search(text)
    return _rfc3339(moved, min(len(fraction.group(1)), 9) if fraction else 0)


def time_range(events: Iterable[tuple[dict, str]]) -> tuple[int, int] | None:
    """The earliest and the latest time of ``(event, source)`` pairs, None when none has one."""
    first = last = None
    for event, source in events:
        for key in TIME_KEYS.get(source, ()):
            ns = _as_ns(event.get(key))
            if ns is not None:
                if first is None or ns < first:
                    first = ns
                if last is None or ns > last:
                    last = ns
    return None if first is None else (first, last)  # type: ignore[return-value]


def offset_to_end_at(found: tuple[int, int], end_ns: int, after_ns: int | None = None) -> int:
    """The shift, whole seconds, that makes events spanning ``found`` (:func:`time_range`) end
    in the second up to ``end_ns``; with ``after_ns``, begin after it if ending then would not."""
    start = end_ns - (found[1] - found[0])
    if after_ns is not None:
        start = max(start, after_ns + _SECOND)
    return (start - found[0]) // _SECOND * _SECOND


def retimed(events: list[tuple[dict, str]], offset_ns: int) -> list[dict]:
    """Copies of the events, each of ``(event, source)``, their times moved by ``offset_ns``;
    the given events are not changed, an event without a time is given back as it is."""
    out = []
    for event, source in events:
        keys = [key for key in TIME_KEYS.get(source, ()) if key in event]
        if keys:
            event = dict(event)
            for key in keys:
                event[key] = shifted(event[key], offset_ns)
        out.append(event)
    return out
