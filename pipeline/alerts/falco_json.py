"""Falco's JSON alert, its event time and a deterministic alert id.

Falco writes ``{"hostname", "output", "output_fields", "priority", "rule",
"source", "tags", "time"}`` with keys sorted (nlohmann's std::map); ``time``
is the event's time in ISO 8601 with nanoseconds and ``Z``. Peregrine adds
``uuid``: uuid5 over the rule name and a SHA-256 of the event's canonical
JSON (sorted keys), so replaying an event never makes a second alert id.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

import orjson

from pipeline.alerts.alert import Alert
from pipeline.alerts.output import iso8601_ns
from pipeline.ingest.numbers import int64
from pipeline.json_bytes import json_bytes

# A fixed namespace for Peregrine's alert ids (never change it: ids would change).
ALERT_NAMESPACE = uuid.UUID("5b0f6a1e-8c7d-4f3e-9a2b-1d4c6e8f0a37")
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d{2}:?\d{2})?$")


def canonical_bytes(event: Any) -> bytes:
    """``event`` as JSON with sorted keys, whatever it holds: a value JSON has no type for is
    written as its ``str``, and so is an integer past 64 bits (which orjson refuses; only an
    object built in Python, or parsed from YAML, has one: orjson parses them as floats);
    nesting past what orjson writes is cut (pipeline/json_bytes.py)."""
    return json_bytes(event, _CANONICAL)


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def alert_uuid(event: Any, rule: str) -> str:
    """Same event (whatever its key order) and rule -> same id; another rule or event -> another id."""
    digest = hashlib.sha256(canonical_bytes(event)).hexdigest()
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{rule}\x00{digest}"))


def parse_rfc3339_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (up to 9 fraction digits), or None."""
    match = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    import calendar

    try:
        seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _ns(value: Any) -> int | None:
    """An event time in ns: a positive int, float or digit string that fits a signed 64-bit
    integer (up to year 2262; past it, as when missing, "now"), or an RFC 3339 time."""
    if isinstance(value, float):
        return int(value) if 0 < value < 2.0 ** 63 else None
    number = int64(value)
    if number is not None:
        return number if number > 0 else None
    return parse_rfc3339_ns(value) if isinstance(value, str) else None


#: per source, the top-level fields that hold an event's own time, the first present wins
TIME_KEYS: dict[str, tuple[str, ...]] = {
    "syscall": ("evt.time", "evt.rawtime"),
    "k8s_audit": ("stageTimestamp", "requestReceivedTimestamp"),
    "aws_cloudtrail": ("eventTime",),
}


def event_time_ns(event: Any, source: str) -> int:
    """The event's own time: ``evt.time`` (ns) for syscall events, the audit event's
    ``stageTimestamp`` (else ``requestReceivedTimestamp``) for k8s_audit, ``eventTime``
    for CloudTrail; now when the event has none."""
    if isinstance(event, dict):
        for key in TIME_KEYS.get(source, ("evt.time",)):
            found = _ns(event.get(key))
            if found is not None:
                return found
    return time.time_ns()


def falco_json_dict(alert: Alert) -> dict[str, Any]:
    return {
        "hostname": alert.hostname,
        "output": alert.output,
        "output_fields": dict(alert.output_fields),
        "priority": alert.priority.label,
        "rule": alert.rule,
        "source": alert.source,
        "tags": list(alert.tags),
        "time": iso8601_ns(alert.time_ns),
        "uuid": alert.uuid,
    }


def falco_json(alert: Alert) -> bytes:
    """One alert as Falco's JSON line (keys sorted, no trailing newline)."""
    return json_bytes(falco_json_dict(alert), orjson.OPT_SORT_KEYS)
