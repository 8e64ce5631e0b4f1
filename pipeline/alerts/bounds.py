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

#: a flat_object value longer than this (UTF-8 bytes) is cut in the index (Lucene's term limit is 32766)
MAX_INDEXED_VALUE_BYTES = 8192
# Kafka's producer and broker refuse a record over ~1 MB by default, and a send that fails for good
# stops the worker on the same batch at every restart; every record the worker writes stays under:
#: a whole record: an alert, an OCSF finding, a dead letter
MAX_RECORD_BYTES = 900_000
#: a record the worker fills from parts it can split or let go: a batch of repartitioned or
#: regrouped events, a container's process tree, a correlation group's state (changelogs)
MAX_PART_BYTES = 512 * 1024
#: a record's key (container ids, namespaces, account ids and group keys are far shorter)
MAX_KEY_BYTES = 1024
#: the caps :func:`for_kafka` tries, in turn, on each string of an alert too large for Kafka
KAFKA_VALUE_CAPS = (65_536, 4096, 256)


def cut(text: str, max_bytes: int) -> str:
    """``text`` if its UTF-8 fits in ``max_bytes``, else its longest prefix that does (never half
    a character) and a marker ``…[+N bytes]`` naming how many bytes were cut."""
    if len(text) * 4 <= max_bytes:  # fits whatever its characters
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode("utf-8", "ignore")
    return f"{kept}…[+{len(data) - len(kept.encode('utf-8', 'surrogatepass'))} bytes]"


def bounded(value: Any, max_bytes: int) -> Any:
    """``value`` with every string in it (also inside lists and objects) cut to ``max_bytes``."""
    if isinstance(value, str):
        return cut(value, max_bytes)
    if isinstance(value, list):
        return [bounded(item, max_bytes) for item in value]
    if isinstance(value, dict):
        return {key: bounded(item, max_bytes) for key, item in value.items()}
    return value


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
