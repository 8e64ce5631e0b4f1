"""A request body -> the Kafka records of its audit events.

The API server's webhook backend posts an ``audit.k8s.io`` ``EventList``
(Falco's k8saudit plugin also takes a single ``Event``). Its items carry no
``kind``/``apiVersion`` of their own; each record gets them from the list, so
a message on the audit topic is one event exactly as the log backend writes
it. The key is ``objectRef.namespace`` (one namespace's events land in one
partition, in order); events with no namespace (cluster-scoped objects,
non-resource URLs) share :data:`~pipeline.ingest.keys.CLUSTER_KEY`
(:func:`~pipeline.ingest.keys.audit_key`, which ``peregrine replay`` keys them by too).

An event too large for one Kafka message is trimmed the way a lower audit
level would record it (``responseObject``, then ``requestObject`` removed,
named in the ``peregrine.dev/trimmed`` annotation): who did what to which
object is kept. One that is still too large is dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.errors import EventError
from pipeline.ingest.keys import CLUSTER_KEY, audit_key
from pipeline.json_bytes import json_bytes

TRIMMED_ANNOTATION = "peregrine.dev/trimmed"
_TRIMMABLE = ("responseObject", "requestObject")
MAX_AUDIT_ID_CHARS = 200  # of an auditID that is not a string as a log line shows it, of a value a 400 quotes


class BadAuditBody(EventError):
    """A body the receiver answers with 400: the reason is sent back."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    key: bytes
    value: bytes
    audit_id: str
    trimmed: bool = False


@dataclass(frozen=True, slots=True)
class DroppedEvent:
    audit_id: str
    size: int


@dataclass(frozen=True, slots=True)
class Batch:
    records: tuple[AuditRecord, ...]
    dropped: tuple[DroppedEvent, ...] = ()


def parse_body(body: bytes) -> list[dict]:
    """The events of an ``EventList`` or a single ``Event``. Raises BadAuditBody.

    kube-apiserver copies a PATCH body into ``requestObject`` as it came, and Go's encoder
    lets through what orjson refuses: a lone surrogate escape (``\\ud800``), bytes that are not
    UTF-8, ``1e400``. One such event made the whole batch a 400, which the API server never
    retries: up to 400 events lost. Such a body is read again by the json module, which takes
    them (the text made valid UTF-8, ``1e400`` an infinity written later as null), so only
    the odd value changes."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        document = _lenient(body, error)
    if not isinstance(document, dict):
        raise BadAuditBody(f"body is a JSON {_type(document)}, not an audit.k8s.io EventList or Event object")
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if not isinstance(api_version, str) or not api_version.startswith("audit.k8s.io/"):
        raise BadAuditBody(f"apiVersion is {_shown(api_version)}, not audit.k8s.io/v1 (an audit EventList or Event)")
    if kind == "Event":
        return [document]
    if kind != "EventList":
        raise BadAuditBody(f"kind is {_shown(kind)}, not EventList or Event")
    items = document.get("items")
    if items is None:
        return []  # Go encodes an empty list as null
    if not isinstance(items, list):
        raise BadAuditBody(f"items is a JSON {_type(items)}, not an array of events")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadAuditBody(f"items[{index}] is a JSON {_type(item)}, not an event object")
    for item in items:
        item.setdefault("kind", "Event")
        item.setdefault("apiVersion", api_version)
    return items


def _lenient(body: bytes, error: orjson.JSONDecodeError) -> Any:
    import json

    try:
        return json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise BadAuditBody(f"body is not JSON: {error}") from None




def to_batch(events: list[dict], max_event_bytes: int) -> Batch:
    """Records in the order of the events (trimmed where needed), and what was dropped."""
    records: list[AuditRecord] = []
    dropped: list[DroppedEvent] = []
    for event in events:
        audit_id = _audit_id(event)
        value = json_bytes(event)
        trimmed = False
        if len(value) > max_event_bytes:
            original_size = len(value)
            value = _trimmed(event, max_event_bytes)
            if value is None:
                dropped.append(DroppedEvent(audit_id, original_size))
                continue
            trimmed = True
        records.append(AuditRecord(audit_key(event), value, audit_id, trimmed))
    return Batch(tuple(records), tuple(dropped))


def _audit_id(event: dict) -> str:
    """The event's ``auditID`` (the API server's is a UUID), for the log line of a dropped event;
    any other value as its JSON, cut short. str() of a list nested a thousand deep raised
    RecursionError in the handler: a 500, which the API server retries, so the batch never got in."""
    audit_id = event.get("auditID", "")
    if audit_id.__class__ is str:
        return audit_id
    return json_bytes(audit_id)[:MAX_AUDIT_ID_CHARS].decode("utf-8", "replace")


def _trimmed(event: dict, max_event_bytes: int) -> bytes | None:
    smaller = dict(event)
    removed: list[str] = []
    for name in _TRIMMABLE:
        if name not in smaller:
            continue
        del smaller[name]
        removed.append(name)
        annotations = smaller.get("annotations")
        smaller["annotations"] = {**(annotations if isinstance(annotations, dict) else {}), TRIMMED_ANNOTATION: ",".join(removed)}
        value = json_bytes(smaller)
        if len(value) <= max_event_bytes:
            return value
    return None


def _shown(value: object) -> str:
    """A value a 400's reason quotes: a scalar as Python writes it (a string cut short), an array
    or an object by its type. repr() of one nested a thousand deep raised RecursionError: a 500,
    which the API server retries for ever, instead of the 400 it drops."""
    if isinstance(value, (list, dict)):
        return f"a JSON {_type(value)}"
    shown = repr(value)
    return shown if len(shown) <= MAX_AUDIT_ID_CHARS else shown[:MAX_AUDIT_ID_CHARS] + "..."


def _type(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")
