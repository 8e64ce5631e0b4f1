"""A completed correlation as a Peregrine :class:`~pipeline.alerts.Alert`, so scan and
the worker print, send and index it like any rule's alert.

``output_fields`` holds the value of each ``%field`` of the output, as a rule alert's
(``step.drop.fd.name``, ``toupper(user.name)``, ``corr.count``...), and the correlation's
own data under ``corr.*``:
``corr.type``, ``corr.group`` (``{by field: value}``), ``corr.group_key``,
``corr.events`` (each contributing event's id, time, step and summary; a threshold or
distinct count lists its newest 50), ``corr.count`` (the events in the match) and
``corr.suppressed`` (matches not alerted since the previous alert, under
throttling); the group fields themselves are there too. The ``uuid`` is
derived from the rule, the group key and the contributing events, so a
replay gives the same id and an index never holds a match twice: each event
by its id and its time, or by its id alone where the source gives every
event an id of its own (K8s audit ``auditID``, CloudTrail ``eventID``; one
audit request's stages share it). A syscall event's ``evt.num`` restarts
with the collector and repeats across nodes, and a collector without it
gives ``<pid>/<evt.type>``: by ids alone, the same attack again later made
the same uuid, and OpenSearch refused its alert as already stored.
"""

from __future__ import annotations

import uuid

from pipeline.alerts import Alert
from pipeline.alerts.output import clock_ns
from pipeline.correlation.evaluate import UNIQUE_IDS, CorrelationAlert

CORRELATION_NAMESPACE = uuid.UUID("0f1d3c5e-7a9b-4c2d-8e6f-a1b2c3d4e5f6")


def correlation_uuid(alert: CorrelationAlert) -> str:
    if alert.source in UNIQUE_IDS:
        ids = ",".join(str(event.id) for event in alert.events)
    else:
        ids = ",".join(f"{event.id}@{event.time}" for event in alert.events)
    return str(uuid.uuid5(CORRELATION_NAMESPACE, f"{alert.rule}\x00{alert.group_key}\x00{ids}"))


def as_alert(alert: CorrelationAlert, hostname: str) -> Alert:
    message = alert.output
    fields = dict(alert.fields)
    fields.update(alert.group)
    fields.update({
        "evt.time": alert.time,
        "corr.type": alert.kind,
        "corr.group": dict(alert.group),
        "corr.group_key": alert.group_key,
        "corr.events": [event.to_dict() for event in alert.events],
        "corr.suppressed": alert.suppressed,
        "corr.count": alert.count,
    })
    return Alert(
        uuid=correlation_uuid(alert),
        time_ns=alert.time,
        rule=alert.rule,
        priority=alert.priority,
        source=alert.source,
        output=f"{clock_ns(alert.time)}: {alert.priority.label} {message}",
        message=message,
        output_fields=fields,
        tags=alert.tags,
        hostname=hostname,
    )


__all__ = ["as_alert", "correlation_uuid"]
