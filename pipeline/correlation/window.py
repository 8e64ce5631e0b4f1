"""The events a threshold or distinct-count group counts, kept small enough for any ``count``.

A group's state is one changelog record (at most ``MAX_PART_BYTES``), written
again after every batch that changes it, and a threshold may count up to
``max_count`` events. A counted event is therefore two numbers, not a record:
its time (relative to the group's base time) and a 48-bit digest of its id
(of id and time where ids repeat across nodes), in parallel lists sorted by
time. A distinct count keeps a digest of each counted value instead of the
event's (a replay shows the same value at the same time). Only the newest
:data:`LISTED` events keep their whole record (id, time, summary), which the
alert lists; the alert's count covers all of them.

Shape, inside the group's state (:mod:`pipeline.correlation.state`):

* ``"wb"``: base time (ns); ``"wt"``: times minus ``wb``, ascending;
* ``"wh"``: event digests (thresholds), ``"wv"``: value digests (distinct counts);
* ``"wx"``: the newest records, oldest first, a distinct one with its ``"v"``;
* ``"fh"``/``"fn"``/``"ft"``: the digests of the events the group's alerts
  counted, oldest alert first, ``"fn"`` saying how many are each alert's and
  its newest event time, and ``"ft"`` the newest of those times. An alert's
  are kept a window after its newest event, so that the same events replayed
  (after a crash or a rebalance) do not count again, however many alerts back
  the replay starts (a worker killed after several alerts of one batch, a
  regroup partition read again from its last commit); at most
  :func:`fired_kept` digests, the oldest alerts' dropped first. State written when only the last alert's were kept (no ``"fn"``)
  reads as one alert.

A worker upgraded from the earlier shape (``"t"``/``"v"``/``"f"``: a record per
event) reads it through :func:`upgrade`.

The membership checks (``digest in list``) run in C; a late event is put in
its place with a bisection. Dropping what left the window deletes a prefix.
At ``count`` = 10000 an event costs a few tens of microseconds, and the
state stays under 500 KB (tests/unit/test_correlation_window.py).
"""

from __future__ import annotations

from bisect import bisect_right
from hashlib import blake2b
from typing import Any

LISTED = 50  # the newest counted events whose records the alert lists
DIGEST_BYTES = 6  # 48 bits: among 20K kept digests, a false match is ~1e-10 per event


def digest(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest(), "big")


def event_digest(event_id: Any, time: int, by_id: bool) -> int:
    """What a counted event is known by: its id where the source's ids are unique, else its id
    and time (``evt.num`` repeats across nodes)."""
    return digest(str(event_id) if by_id else f"{event_id}\x00{time}")


def sighting(value: int, time: int) -> int:
    """What a distinct count's event is known by once it fired: its value and time."""
    return digest(f"{value}\x00{time}")


def counted(state: dict[str, Any], event: int) -> bool:
    """Whether the group already counts this event, or the last alert counted it."""
    return event in state.get("wh", ()) or event in state.get("fh", ())


def add(state: dict[str, Any], time: int, key: int, record: dict[str, Any], distinct: bool = False) -> bool:
    """Count an event, ``key`` being its digest (a threshold) or its value's (a distinct count).
    False when it counts nothing new: a distinct value already counted by a newer event."""
    times = state.get("wt")
    if not times:
        base = state["wb"] = time
        times = state["wt"] = []
        state["wv" if distinct else "wh"] = []
        state["wx"] = []
    else:
        base = state["wb"]
    at = time - base
    if not distinct:
        kept = state["wh"]
    else:
        kept = state["wv"]
        if key in kept:
            old = kept.index(key)
            if times[old] > at:
                return False  # the value was seen later already: that sighting stays
            del times[old], kept[old]
            state["wx"] = [listed for listed in state["wx"] if listed.get("v") != key]
        record = dict(record, v=key)
    index = bisect_right(times, at)
    times.insert(index, at)
    kept.insert(index, key)
    listed = state["wx"]
    if not listed or time >= listed[-1]["t"]:
        listed.append(record)
    elif len(listed) < LISTED or time >= listed[0]["t"]:  # a late event among the newest
        listed.insert(bisect_right(listed, time, key=_time), record)
    if len(listed) > LISTED:
        del listed[0]
    return True


def _time(record: dict[str, Any]) -> int:
    return record["t"]


def prune(state: dict[str, Any], window: int, count: int) -> int:
    """Drop what left the window (which ends at the newest counted event) and what is beyond
    ``count``, oldest first; returns how many events the group counts."""
    times = state.get("wt")
    if not times:
        return 0
    base = state["wb"]
    start = bisect_right(times, times[-1] - window)
    start = max(start, len(times) - count)
    if start:
        for name in ("wt", "wh", "wv"):
            kept = state.get(name)
            if kept is not None:
                del kept[:start]
        oldest = base + times[0]
        listed = state["wx"]
        while listed and (listed[0]["t"] < oldest or len(listed) > len(times)):
            del listed[0]
    if times[0] > window:  # relative times stay under two windows: a few digits each
        shift = times[0]
        state["wt"] = [at - shift for at in times]
        state["wb"] = base + shift
    return len(state["wt"])


def newest(state: dict[str, Any]) -> int | None:
    times = state.get("wt")
    return state["wb"] + times[-1] if times else None


FIRED_KEPT_MIN = 2048  # fired digests kept at least: 128 alerts back at a count of 16
FIRED_KEPT_MAX = 20_000  # and at most: ~300 KB of the group's changelog record (MAX_PART_BYTES)


def fired_kept(count: int) -> int:
    """How many fired digests a group keeps: four alerts' at least, 2048 for a small count
    (a replay reaches back as far as the offsets were last committed, which at a busy group
    can be many alerts), never more than fits its changelog record."""
    return min(max(4 * count, FIRED_KEPT_MIN), FIRED_KEPT_MAX)


def _fired(state: dict[str, Any]) -> tuple[list[int], list[list[int]]]:
    """The fired digests and their alerts' ``[newest time, how many]``, oldest first (state
    from before ``"fn"``: its digests as one alert)."""
    digests = state.get("fh") or []
    alerts = state.get("fn")
    if alerts is None:
        alerts = [[state["ft"], len(digests)]] if digests and "ft" in state else []
    return digests, alerts


def fire(state: dict[str, Any], keep: int = 0) -> list[dict[str, Any]]:
    """The group completed: the listed records (without their value digests) for the alert; the
    counted events are remembered as fired, with the earlier alerts' still in their window (at
    most ``keep`` digests, 0: no bound), and the window starts again."""
    latest = newest(state)
    values = state.pop("wv", None)
    if values is None:
        new = state.pop("wh", [])
    else:
        base = state["wb"]
        new = [sighting(value, base + at) for value, at in zip(values, state["wt"])]
    digests, alerts = _fired(state)
    digests = digests + new
    alerts = alerts + [[latest, len(new)]]
    while keep and len(digests) > keep and len(alerts) > 1:
        del digests[: alerts.pop(0)[1]]
    state["fh"], state["fn"] = digests, alerts
    state["ft"] = max(time for time, _ in alerts)
    listed = state.pop("wx", [])
    state.pop("wb", None)
    state.pop("wt", None)
    return [{k: v for k, v in record.items() if k != "v"} if "v" in record else record for record in listed]


def forget_fired(state: dict[str, Any], now: int, window: int) -> int:
    """Drop each alert's fired digests once its newest event left the window (a replay of them
    could count no more); returns until when the rest are kept (0: none are)."""
    if state.get("ft") is None:
        return 0
    digests, alerts = _fired(state)
    if any(time <= now - window for time, _ in alerts):
        kept_digests: list[int] = []
        kept: list[list[int]] = []
        start = 0
        for time, count in alerts:
            if time > now - window:
                kept_digests.extend(digests[start:start + count])
                kept.append([time, count])
            start += count
        digests, alerts = kept_digests, kept
        if not alerts:
            for key in ("fh", "fn", "ft"):
                state.pop(key, None)
            return 0
        state["fh"], state["fn"] = digests, alerts
        state["ft"] = max(time for time, _ in alerts)
    return state["ft"] + window


def upgrade(state: dict[str, Any], by_id: bool, distinct: bool) -> None:
    """A group written by an earlier Peregrine (a record per event under ``"t"``, ``"v"`` and
    ``"f"``) in this module's shape, in place."""
    old = state.pop("v", None) if distinct else state.pop("t", None)
    fired = state.pop("f", None)
    # a distinct count's fired events are known by value and time, which the old shape did not
    # keep: a replay of its last alert's events, just after the upgrade, counts again
    if fired and not distinct:
        state["fh"] = [event_digest(entry["id"], entry["t"], by_id) for entry in fired]
        state["ft"] = max(entry["t"] for entry in fired)
    if distinct and old:
        for key, record in old.items():
            add(state, record["t"], digest(key), record, distinct=True)
    elif old:
        for record in old:
            add(state, record["t"], event_digest(record["id"], record["t"], by_id), record)


def is_legacy(state: dict[str, Any]) -> bool:
    return "t" in state or "v" in state or "f" in state


__all__ = ["LISTED", "add", "counted", "digest", "event_digest", "fire", "forget_fired", "is_legacy", "newest", "prune",
           "upgrade"]
