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

import json
from collections.abc import Callable
from typing import Any

from pipeline.correlation.model import Step

UNTIL = -1
NEVER = 1 << 63  # the "u" of a partial no until ends

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


def end(partial: dict[str, Any], until: int) -> bool:
    """An ``until`` at ``until`` arrived for ``partial`` (which started at or before it): False when
    it falls between two of the partial's events (the partial is over); else the partial is marked
    to end there (``"u"``), and True: a step older than the until may still arrive and advance it."""
    if until < partial["l"]:
        return False
    if "u" not in partial or until < partial["u"]:
        partial["u"] = until
    return True


def covers(newer: dict[str, Any], older: dict[str, Any], watermark: int) -> bool:
    """Whether ``newer`` (started no earlier than ``older``, at the same step with the same bindings)
    can take every event ``older`` can: its last event is no later, or both are before the
    watermark (no event that old can come), and no until ends it earlier. In order, the newest
    partial covers the others; out of order, an older one may still take an event the newer cannot."""
    return (max(newer["l"], watermark) <= max(older["l"], watermark)
            and newer.get("u", NEVER) >= older.get("u", NEVER) and newer.get("o", NEVER) >= older.get("o", NEVER))


def left_to_older(partial: dict[str, Any], time: int) -> dict[str, Any]:
    """``partial`` for its next step's events older than ``time`` only (``"o"``): a newer partial
    at the same step, or the one this partial became with an event at ``time``, takes the others.
    In order none could come: such a partial is dropped once the watermark passes ``time``."""
    if partial.get("o", NEVER) <= time:
        return partial
    return dict(partial, o=time)


def spent(waiting: list[dict[str, Any]], completed: list[dict[str, Any]], last: int, span: int) -> list[dict[str, Any]]:
    """The held events once ``completed`` matches were made (``last``: the last step's index). What a
    match took for an earlier step is held for no partial bound as the match is (in order, it would
    have been taken by this chain, whose other partials close with it), only for those bound to
    other values, which in order it would have advanced too; it remembers the bindings of the
    matches that took it (``"x"``, see :func:`taken`). The event that ended a match stays held
    for the partials bound otherwise, which it would have ended too in order; it is marked with
    the chain it ended (``"c"``, see :func:`ending_mark`) so that no partial bound the same way
    (every partial, for a sequence without bindings), which in order would have been that chain,
    ends with it again; once an older event that could have ended the chain arrives, the partials
    that reach the last step after that one may (:func:`ended_earlier`)."""
    used: dict[tuple[Any, int], list[dict[str, Any]]] = {}
    endings: dict[tuple[Any, int], list[list[Any]]] = {}
    for match in completed:
        *earlier, ending = match["e"]
        for record in earlier:
            used.setdefault((record["id"], record["t"]), []).append(match["b"])
        endings.setdefault((ending["id"], ending["t"]), []).append(ending_mark(match, span))
    out = []
    for entry in waiting:
        record = entry["r"]
        if record is None:
            out.append(entry)
            continue
        event = (record["id"], entry["t"])
        if entry["k"] == last and event in endings:
            entry["c"] = entry.get("c", []) + endings[event]
            out.append(entry)
        elif event in used:
            if any(used[event]):  # a match without bindings: every partial is its chain
                entry["x"] = entry.get("x", []) + used[event]
                out.append(entry)
        else:
            out.append(entry)
    return out


def taken(entry: dict[str, Any], bound: dict[str, Any]) -> bool:
    """Whether a match that took the held ``entry`` for an earlier step is the chain a partial bound
    with ``bound`` would be: their bindings agree on every name both have (with the entry's own)."""
    mine = dict(bound, **entry["v"]) if entry["v"] else bound
    return any(all(mine[name] == value for name, value in match.items() if name in mine) for match in entry["x"])


def ending_mark(match: dict[str, Any], span: int) -> list[Any]:
    """What a held last step remembers of the chain it ended: ``[its bindings (text), the time the
    chain ended in event time, the time it reached its last step, the latest time it could end]``.
    The end is the ending event's own time until an older event that could have ended the chain
    arrives (:func:`ended_earlier`)."""
    before = match["e"][-2]["t"] if len(match["e"]) > 1 else match["f"]
    return [bindings_text(match["b"]), match["l"], before, match["f"] + span]


def ended_earlier(waiting: list[dict[str, Any]], event_id: Any, time: int, last: int) -> bool:
    """The held last step of ``event_id`` at ``time``, if it fits a chain a newer event ended, is
    the event that ended that chain in event time: the chain's marks end at ``time`` (a partial
    bound the same way that reaches the last step after it is not that chain: in order the newer
    event would have ended that partial), and this entry carries them too. Whether a mark moved:
    the newer event may now end a partial already open."""
    entry = next((other for other in reversed(waiting) if other["k"] == last and other["t"] == time
                  and other["r"]["id"] == event_id), None)
    if entry is None:
        return False  # not held (the group's held limit)
    moved = False
    for other in waiting:
        if other is entry or "c" not in other:
            continue
        for mark in other["c"]:
            # a mark written before marks recorded their chain (a string) ends at its entry's time
            if isinstance(mark, str) or not mark[2] <= time < mark[1] or time > mark[3]:
                continue
            if not fits(entry, json.loads(mark[0])):
                continue
            mark[1] = time
            moved = True
            marks = entry.setdefault("c", [])
            if not any(not isinstance(own, str) and own[0] == mark[0] and own[2] == mark[2] for own in marks):
                marks.append(list(mark))
    return moved


def ended(entry: dict[str, Any], bound: dict[str, Any], last: int) -> bool:
    """Whether a held last step already ended a match bound as a partial with ``bound``, whose last
    event is at ``last``, would be: a chain bound the same way that had not ended by ``last``, which
    in event-time order the partial would have been merged with."""
    text = bindings_text(dict(bound, **entry["v"]) if entry["v"] else bound)
    for mark in entry["c"]:
        if isinstance(mark, str):
            if mark == text:
                return True
        elif mark[0] == text and last <= mark[1]:
            return True
    return False


def bindings_text(bound: dict[str, Any]) -> str:
    return json.dumps(bound, sort_keys=True, default=str)


def broken(partial: dict[str, Any], time: int) -> bool:
    """Whether an ``until`` came between the partial's last event and an event at ``time``."""
    until = partial.get("u")
    return until is not None and time >= until


__all__ = ["NEVER", "UNTIL", "bindings_text", "broken", "covers", "end", "ended", "ended_earlier", "ending_mark", "fits", "hold", "left_to_older", "mark", "spent", "until_after"]
