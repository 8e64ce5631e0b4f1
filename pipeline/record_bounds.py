"""How large a record the worker writes to Kafka may be, and how a value is cut to fit.

Kafka's producer and broker refuse a record over ~1 MB by default, and a send
that fails for good stops the worker on the same batch at every restart (the
batch is never acked). Every record the worker writes stays under these
bounds: alerts and OCSF findings (pipeline/alerts/bounds.py), dead letters
(pipeline/deadletter.py), repartitioned and regrouped events
(pipeline/stream/batch.py), process trees (pipeline/state/process_tree.py)
and correlation groups (pipeline/correlation/table.py).
"""

from __future__ import annotations

from typing import Any

from pipeline.json_bytes import DEEPER, MAX_DEPTH

#: a whole record: an alert, an OCSF finding, a dead letter
MAX_RECORD_BYTES = 900_000
#: a record the worker fills from parts it can split or let go: a batch of repartitioned or
#: regrouped events, a container's process tree, a correlation group's state (changelogs)
MAX_PART_BYTES = 512 * 1024
#: a record's key (container ids, namespaces, account ids and group keys are far shorter)
MAX_KEY_BYTES = 1024


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


def bounded(value: Any, max_bytes: int, depth: int = 1) -> Any:
    """``value`` with every string in it (also inside lists and objects) cut to ``max_bytes``,
    and its nesting cut where :func:`pipeline.json_bytes.writable` cuts it (an event's object
    nested 500 deep, printed by a rule, overflowed Python's recursion here)."""
    if isinstance(value, str):
        return cut(value, max_bytes)
    if isinstance(value, (list, dict)) and depth > MAX_DEPTH:
        return DEEPER
    if isinstance(value, list):
        return [bounded(item, max_bytes, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: bounded(item, max_bytes, depth + 1) for key, item in value.items()}
    return value
