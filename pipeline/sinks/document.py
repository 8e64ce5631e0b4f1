"""The OpenSearch document of an alert: Falco's JSON plus a ``context`` block.

``output_fields`` is mapped as a ``flat_object`` (Falco's dotted names never
add mappings), and OpenSearch cannot aggregate on a flat object's subfields.
A SOC still wants "alerts per namespace, per container, per user", so the
few fields analysts group by are copied, from whichever source-specific field
the rule's output carries, into ``context`` (keywords in the index template):

| context key | taken from (first present) |
|---|---|
| ``container_id`` | ``container.id`` |
| ``image`` | ``container.image.repository``, ``container.image``, ``ka.req.pod.containers.image`` |
| ``namespace`` | ``k8s.ns.name``, ``ka.target.namespace`` |
| ``pod`` | ``k8s.pod.name``, ``ka.target.pod.name``; ``ka.target.name``, else ``ka.resp.name``, when ``ka.target.resource`` is pods |
| ``user`` | ``user.name``, ``ka.user.name``, ``ct.user`` |
| ``process`` | ``proc.name`` |
| ``group_key`` | ``corr.group_key`` (correlation alerts) |

A correlation alert's ``corr.group`` (its ``by`` fields and their values) is
read after ``output_fields``, so a chain grouped by ``container.id`` gets its
``container_id`` even when the output does not print it.

The Kafka alert topic keeps Falco's JSON exactly; only the stored document
has ``context``. An ``output_fields`` value longer than 8 KiB is cut in the
stored document (a flat_object value is one indexed term, and Lucene refuses
a term over 32766 bytes with its whole document); the whole value is kept in
``long_values``, stored but not indexed (pipeline/alerts/bounds.py).
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Mapping

import orjson

from pipeline.alerts.alert import Alert
from pipeline.alerts.bounds import bound_values
from pipeline.alerts.falco_json import falco_json_dict
from pipeline.json_bytes import json_bytes

CONTEXT_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("container_id", ("container.id",)),
    ("image", ("container.image.repository", "container.image", "ka.req.pod.containers.image")),
    ("namespace", ("k8s.ns.name", "ka.target.namespace")),
    ("pod", ("k8s.pod.name", "ka.target.pod.name")),
    ("user", ("user.name", "ka.user.name", "ct.user")),
    ("process", ("proc.name",)),
    ("group_key", ("corr.group_key",)),
)


def _first(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None and value != "" and value != "<NA>":
            return str(value)
    return None


def alert_context(fields: Mapping[str, Any]) -> dict[str, str]:
    """The ``context`` block: only the keys the alert has a value for."""
    group = fields.get("corr.group")
    if isinstance(group, Mapping):
        fields = ChainMap(dict(fields), dict(group))
    context = {key: value for key, names in CONTEXT_SOURCES if (value := _first(fields, names)) is not None}
    if "pod" not in context and fields.get("ka.target.resource") == "pods":
        pod = _first(fields, ("ka.target.name", "ka.resp.name"))  # Falco's Create Privileged Pod prints ka.resp.name
        if pod is not None:
            context["pod"] = pod
    return context


def alert_document(alert: Alert) -> bytes:
    """The bytes stored in OpenSearch for one alert."""
    document = falco_json_dict(alert)
    context = alert_context(alert.output_fields)
    if context:
        document["context"] = context
    document["output_fields"], whole = bound_values(alert.output_fields)
    if whole:
        document["long_values"] = whole
    return json_bytes(document, orjson.OPT_SORT_KEYS)
