"""Numbers as producers send them: pids, times and counts as ints or as digit strings.

Every place that keeps or writes one (the process tree's changelog, Falco's JSON, the OCSF
finding, OpenSearch longs) holds a signed 64-bit integer at most: orjson refuses to write a
larger one, and a record the worker cannot write would stop it. :func:`int64` is the one
reading of such a value.
"""

from __future__ import annotations

from typing import Any

INT64 = 1 << 63  # pids, times and counts fit a signed 64-bit integer: JSON (orjson), changelogs, OpenSearch longs


def int64(value: Any) -> int | None:
    """``value`` as an int that fits a signed 64-bit integer: an int, or the ASCII digits of one
    (with an optional minus); None for anything else, a bool included ("²" is a digit to
    str.isdigit that int() refuses)."""
    if value.__class__ is int:
        return value if -INT64 <= value < INT64 else None
    if value.__class__ is str:
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            number = int(value)
            return number if -INT64 <= number < INT64 else None
    return None
