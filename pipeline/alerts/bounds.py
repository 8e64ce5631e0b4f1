"""Alerts whose field values are too long for where they go.

An event's field can be long (a command line carrying a base64 payload is
common in attacks), and its alert carries it twice: in ``output_fields`` and
in the output line. Two limits then bite, and neither may lose the alert:

- Kafka refuses a record larger than the producer's request size (1 MB by
  default). The delivery would fail for good, and the worker would stop on
  the same batch at every restart. :func:`for_kafka` cuts the alert's long
  values until its JSON fits, each cut value ending with a marker that says
  how much is missing.
- OpenSearch indexes each value of a ``flat_object`` as one term, and Lucene
  refuses a term over 32766 bytes, and with it the whole document: an
  attacker could keep an alert out of the SOC's index by padding a command
  line. :func:`bound_values` cuts ``output_fields`` values to
  :data:`MAX_INDEXED_VALUE_BYTES` for the index and returns the whole ones,
  which the document keeps in an unindexed field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping

from pipeline.alerts.alert import Alert
from pipeline.alerts.falco_json import falco_json
from pipeline.record_bounds import MAX_RECORD_BYTES, bounded, cut

#: a flat_object value longer than this (UTF-8 bytes) is cut in the index (Lucene's term limit is 32766)
MAX_INDEXED_VALUE_BYTES = 8192
#: the caps :func:`for_kafka` tries, in turn, on each string of an alert too large for Kafka
KAFKA_VALUE_CAPS = (65_536, 4096, 256)


def bound_values(fields: Mapping[str, Any], max_bytes: int = MAX_INDEXED_VALUE_BYTES) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``fields`` with every string, also inside lists and objects, cut to ``max_bytes``;
    the original values of the fields that were cut)."""
    kept: dict[str, Any] = {}
    whole: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, (str, list, dict)):
            short = bounded(value, max_bytes)
            if short != value:
                whole[name] = value
            kept[name] = short
        else:
            kept[name] = value
    return kept, whole


def shortened(alert: Alert, max_bytes: int) -> Alert:
    """``alert`` with its output line, message and output_fields strings cut to ``max_bytes``."""
    fields, _ = bound_values(alert.output_fields, max_bytes)
    return replace(alert, output=cut(alert.output, max_bytes), message=cut(alert.message, max_bytes), output_fields=fields)


def for_kafka(alert: Alert, encode: Callable[[Alert], bytes] = falco_json) -> tuple[Alert, bytes]:
    """The alert and its record (``encode``: Falco's JSON, or the OCSF finding) as they go to
    Kafka: unchanged when the record fits in :data:`MAX_RECORD_BYTES`, else with the alert's
    strings cut to the first cap of :data:`KAFKA_VALUE_CAPS` that makes it fit (the last one
    whatever the size)."""
    document = encode(alert)
    if len(document) <= MAX_RECORD_BYTES:
        return alert, document
    for cap in KAFKA_VALUE_CAPS:
        short = shortened(alert, cap)
        document = encode(short)
        if len(document) <= MAX_RECORD_BYTES:
            break
    return short, document
