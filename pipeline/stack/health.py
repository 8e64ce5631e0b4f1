"""Is each server really answering? Kafka: a metadata request. OpenSearch: cluster health.

A port that accepts connections is not enough: Kafka listens before its
controller has elected itself, OpenSearch before its cluster state recovers.
These probes ask the questions clients will ask, with short timeouts, and
return None instead of raising when the answer is "not (yet)".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass


# The stack is on loopback or a container network: never through an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class KafkaHealth:
    cluster_id: str
    brokers: int
    controller_id: int


@dataclass(frozen=True, slots=True)
class OpenSearchHealth:
    status: str  # green | yellow | red
    version: str
    distribution: str

    @property
    def ready(self) -> bool:
        return self.status in ("green", "yellow")


@contextlib.contextmanager
def quiet_aiokafka():
    """aiokafka logs every refused connection at ERROR; a probe expects those."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def kafka_health(bootstrap: str, timeout_s: float = 5.0) -> KafkaHealth | None:
    from aiokafka.admin import AIOKafkaAdminClient

    with quiet_aiokafka():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            info = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        except Exception:  # any failure means "not ready": refused, timeout, not a Kafka
            return None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    if not info.get("brokers") or info.get("controller_id", -1) < 0:
        return None
    return KafkaHealth(str(info.get("cluster_id")), len(info["brokers"]), int(info["controller_id"]))


def http_json(url: str, *, method: str = "GET", body: object = None, timeout_s: float = 5.0) -> tuple[int, object]:
    """A small JSON-over-HTTP call; (status, parsed body). Raises OSError on connection failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def opensearch_health(url: str, timeout_s: float = 3.0) -> OpenSearchHealth | None:
    try:
        status, root = http_json(url.rstrip("/") + "/", timeout_s=timeout_s)
        if status != 200 or not isinstance(root, dict) or "version" not in root:
            return None
        status, health = http_json(url.rstrip("/") + "/_cluster/health", timeout_s=timeout_s)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(health, dict) or "status" not in health:
        return None
    version = root["version"]
    return OpenSearchHealth(
        str(health["status"]), str(version.get("number", "?")), str(version.get("distribution", "elasticsearch"))
    )
