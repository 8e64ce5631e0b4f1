"""The key of a syscall event: whose process tree it reads and writes, and which
partition of the syscall topic it belongs to.

Falco gives host processes ``container.id`` ``host`` on every node. Keyed by
that alone, the host events of every node in a cluster would share one process
tree, where pids of different nodes collide (a shell on node A would get its
parent from node B), and one partition, the busiest key of a cluster on one
worker. So a host event's key is ``host:`` + its ``evt.hostname``; a
container's is its ``container.id``, unique in the cluster. A host event
without ``evt.hostname`` keeps the key ``host``.

Collectors key their messages with :func:`container_key`; the worker forwards
an event that arrived on another partition than its key's (repartitioning), so
a collector that keys host events ``host`` is still correct, at the cost of
the forward.
"""

from __future__ import annotations

from typing import Any

HOST = "host"
HOST_PREFIX = "host:"


def container_key(event: dict[str, Any]) -> str:
    cid = event.get("container.id")
    if cid.__class__ is str and cid and cid != HOST:
        return cid
    return host_key(event)


_HOST_KEYS: dict[str, str] = {}  # node -> its key: one string per node, not one per event


def host_key(event: dict[str, Any]) -> str:
    """The key of a host event (``container.id`` ``host``, empty or missing)."""
    node = event.get("evt.hostname")
    if node.__class__ is str and node:
        key = _HOST_KEYS.get(node)
        if key is None:
            if len(_HOST_KEYS) >= 100_000:
                _HOST_KEYS.clear()
            key = _HOST_KEYS[node] = HOST_PREFIX + node
        return key
    return HOST
