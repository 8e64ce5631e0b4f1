"""The key of a syscall event: whose process tree it reads and writes, and which
partition of the syscall topic it belongs to.

Falco gives host processes ``container.id`` ``host`` on every node. Keyed by
that alone, the host events of every node in a cluster would share one process
tree, where pids of different nodes collide (a shell on node A would get its
parent from node B), and one partition, the busiest key of a cluster on one
worker. So a host event's key is ``host:`` + its ``evt.hostname``; a
container's is its ``container.id``, unique in the cluster. A host event
without ``evt.hostname`` keeps the key ``host``.

A Kubernetes audit event's key is its object's namespace (:func:`audit_key`),
``_cluster`` for cluster-scoped objects and non-resource URLs: the webhook and
``peregrine replay`` key alike, so one object's events meet one worker.

Collectors key their messages with :func:`container_key`; the worker forwards
an event that arrived on another partition than its key's (repartitioning), so
a collector that keys host events ``host`` is still correct, at the cost of
the forward.
"""

from __future__ import annotations

import hashlib
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


CLUSTER_KEY = b"_cluster"  # the audit events of cluster-scoped objects and non-resource URLs
MAX_NAMESPACE_BYTES = 253  # a DNS subdomain, the longest name Kubernetes stores


def audit_key(event: dict[str, Any]) -> bytes:
    """The event's namespace (its Kafka key), or ``_cluster``. A namespace longer than a real one
    can be (Kubernetes takes it from the URL of a request it then refuses, unauthenticated
    ones included) goes as its digest: a 400 KB key made the record too large for Kafka, and
    the batch a 503 at every retry until the API server dropped it."""
    ref = event.get("objectRef")
    namespace = ref.get("namespace") if isinstance(ref, dict) else None
    if not isinstance(namespace, str) or not namespace:
        return CLUSTER_KEY
    key = namespace.encode("utf-8", "replace")
    if len(key) > MAX_NAMESPACE_BYTES:
        return b"sha256:" + hashlib.sha256(key).hexdigest().encode()
    return key
