"""Turning JSON values into the Python types a FieldType promises.

Falco prints some numbers as strings and marks absent values with ``<NA>``;
collectors send real JSON numbers. Each coercer accepts both and returns
MISSING for anything else, so an extractor never raises on an odd event.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from pipeline.fields.registry import MISSING, FieldType

NA = "<NA>"


def to_str(value: Any) -> Any:
    if value.__class__ is str:
        return MISSING if value == NA else value
    if value is None or value is MISSING or isinstance(value, (dict, list)):
        return MISSING
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def to_int(value: Any) -> Any:
    """An int of a number field (Falco's are 64-bit): from an int, a decimal or 0x text, or
    a float with no fraction. Anything else, or a number past 64 bits, is MISSING."""
    cls = value.__class__
    if cls is int:
        return value
    if cls is str:
        text = value.strip()
        if len(text) > _MAX_DIGITS:
            return MISSING
        if text[:1] in "-+":
            number = int(text) if text[1:].isascii() and text[1:].isdigit() else MISSING
        elif text.isascii() and text.isdigit():  # "²" is a digit that int() refuses
            number = int(text)
        elif text[:2] in ("0x", "0X"):
            try:
                number = int(text, 16)
            except ValueError:
                return MISSING
        else:
            return MISSING
    elif cls is float and value.is_integer():
        number = int(value)
    else:
        return MISSING
    return number if number is MISSING or _INT_MIN <= number < _INT_END else MISSING


_INT_MIN, _INT_END = -(1 << 63), 1 << 64  # int64 and uint64, as libsinsp's number fields
_MAX_DIGITS = 24  # "-9223372036854775808", "0xffffffffffffffff", with room for a sign and spaces


def to_bool(value: Any) -> Any:
    if value is True or value is False:
        return value
    if value.__class__ is str:
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return MISSING


def to_time_ns(value: Any) -> Any:
    """Nanoseconds since the epoch from int ns, a numeric string, or ISO-8601 text."""
    number = to_int(value)
    if number is not MISSING or value.__class__ is not str:
        return number
    return iso8601_to_ns(value)


def iso8601_to_ns(text: str) -> Any:
    """``2024-01-02T03:04:05.123456789Z`` -> ns; keeps all nine fraction digits."""
    body = text.strip()
    if body.endswith("Z") or body.endswith("z"):
        body = body[:-1] + "+00:00"
    fraction_ns = 0
    dot = body.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(body) and body[end].isdigit():
            end += 1
        digits = body[dot + 1 : end]
        fraction_ns = int((digits + "000000000")[:9]) if digits else 0
        body = body[:dot] + body[end:]
    try:
        moment = datetime.fromisoformat(body)
    except ValueError:
        return MISSING
    if moment.tzinfo is None:
        return MISSING
    return int(moment.timestamp()) * 1_000_000_000 + fraction_ns


def ns_to_iso8601(ns: int) -> str:
    """Falco's ``evt.time.iso8601`` form: UTC with nanoseconds."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


SCALAR: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.STRING: to_str,
    FieldType.INT: to_int,
    FieldType.PORT: to_int,
    FieldType.BOOL: to_bool,
    FieldType.IPADDR: to_str,
    FieldType.IPNET: to_str,
    FieldType.ABSTIME: to_time_ns,
    FieldType.RELTIME: to_int,
    FieldType.BYTES: lambda v: v.encode() if v.__class__ is str else (bytes(v) if isinstance(v, (bytes, bytearray)) else MISSING),
}


def coercer(field_type: FieldType, is_list: bool) -> Callable[[Any], Any]:
    """The coercion for a value of this type; lists coerce each item and drop bad ones."""
    one = SCALAR[field_type]
    if not is_list:
        return one

    def many(value: Any) -> Any:
        if value is None or value is MISSING:
            return MISSING
        if value.__class__ is not list:
            item = one(value)
            return MISSING if item is MISSING else [item]
        return [c for c in map(one, value) if c is not MISSING]

    return many
