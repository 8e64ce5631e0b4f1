"""Sequence steps that arrive before the step they follow, held while that step can still come.

Events reach a sequence in arrival order, which is not always event time's:
two API servers, two nodes' clocks, a regrouped event's extra hop. An event
that matches a later step of a sequence, or its ``until``, is held in its
group's state (``"h"``) while an earlier event may still arrive: while its
time is not older than its clock's watermark (the allowed lateness). When a
partial match starts or advances, it takes the held events that fit, as if
they had arrived after it: the next step's, not older than its last event,
within ``maxspan``, matching its bindings. A held ``until`` marks the
partials it follows in time (``"u"``: the earliest such time): such a
partial can still advance with an event older than that, as it would have
before the ``until`` arrived, and is discarded by one at or after it.

A held entry is ``{"k": step index (-1: until), "t": time, "r": the event's
record (steps), "m": {bound name: the value its ``match`` field has},
"v": {name: the value it binds}}``; an event's field values are read once,
when it is held (no event is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.correlation.model import Step

UNTIL = -1

Present = Callable[[Any], bool]
Jsonable = Callable[[Any], Any]


def hold(index: int, step: Step, event: Any, time: int, record: dict[str, Any] | None, present: Present,
         jsonable: Jsonable) -> dict[str, Any]:
    """A held entry for ``event``, which matched step ``index`` (or the until)."""
    matched = {}
    for extract, name in step.matches:
        value = extract(event)
        matched[name] = jsonable(value) if present(value) else None
    bound = {}
    for name, extract in step.binds:
        value = extract(event)
        bound[name] = jsonable(value) if present(value) else None
    return {"k": index, "t": time, "r": record, "m": matched, "v": bound}


def fits(entry: dict[str, Any], bound: dict[str, Any]) -> bool:
    """Whether a held entry's ``match`` fields equal a partial's bound values."""
    for name, value in entry["m"].items():
        if value is None or name not in bound or value != bound[name]:
            return False
    return True


def until_after(held: list[dict[str, Any]], last: int, bound: dict[str, Any]) -> int | None:
    """The earliest held ``until`` at or after ``last`` that applies to a partial bound so."""
    times = [entry["t"] for entry in held if entry["k"] == UNTIL and entry["t"] >= last and fits(entry, bound)]
    return min(times) if times else None


def mark(partial: dict[str, Any], held: list[dict[str, Any]], inherited: int | None = None) -> dict[str, Any]:
    """``partial`` with ``"u"`` set to the earliest ``until`` that follows its last event."""
    until = until_after(held, partial["l"], partial["b"]) if held else None
    if inherited is not None and (until is None or inherited < until):
        until = inherited
    if until is not None:
        partial["u"] = until
    return partial


def broken(partial: dict[str, Any], time: int) -> bool:
    """Whether an ``until`` came between the partial's last event and an event at ``time``."""
    until = partial.get("u")
    return until is not None and time >= until


__all__ = ["UNTIL", "broken", "fits", "hold", "mark", "until_after"]
