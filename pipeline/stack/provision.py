"""What Peregrine needs inside the servers: its Kafka topics and the alert index template.

Both steps are idempotent: an existing topic is kept as it is (its partition
count is reported if it differs), and the template is PUT again unchanged.
They work against any Kafka / OpenSearch, not only the local one, so
`peregrine stack provision` can prepare a docker-compose or remote stack.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Iterable

from pipeline.errors import StackError
from pipeline.stack.health import http_json, quiet_aiokafka
from pipeline.stack.settings import ALERTS_TEMPLATE_NAME, TopicSpec

TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], timeout_s: float = 30.0, **security) -> list[str]:
    """Create the topics that are missing and wait until every partition has a leader.

    Returns notes for the user (e.g. an existing topic with another partition count).
    ``security``: aiokafka's security options (pipeline.stream.credentials.aiokafka_options).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(topics)
    notes: list[str] = []
    with quiet_aiokafka():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **security)
        try:
            await admin.start()
            response = await admin.create_topics(
                [NewTopic(t.name, t.partitions, 1) for t in wanted], timeout_ms=int(timeout_s * 1000)
            )
            for name, code, message in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise StackError(f"cannot create Kafka topic {name!r}: error {code} {message or ''}".strip())
            partitions = await _wait_for_leaders(admin, [t.name for t in wanted], timeout_s)
        except StackError:
            raise
        except Exception as error:
            raise StackError(f"cannot create topics on Kafka at {bootstrap}: {error!r}") from None
        finally:
            await admin.close()
    for topic in wanted:
        have = partitions.get(topic.name)
        if have is not None and have != topic.partitions:
            notes.append(f"topic {topic.name} exists with {have} partitions (settings say {topic.partitions}); left as is")
    return notes


async def _wait_for_leaders(admin, names: list[str], timeout_s: float) -> dict[str, int]:
    """Right after creation a partition has no leader for a moment and produces fail; wait it out."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        counts: dict[str, int] = {}
        ready = True
        for topic in described:
            parts = topic.get("partitions") or []
            counts[topic["topic"]] = len(parts)
            if topic.get("error_code", 0) != 0 or not parts or any(p.get("leader", -1) < 0 for p in parts):
                ready = False
        if ready and len(counts) == len(names):
            return counts
        if time.monotonic() > deadline:
            missing = [n for n in names if n not in counts] or names
            raise StackError(f"Kafka topics {', '.join(missing)} have no partition leaders after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


async def delete_topics(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    with quiet_aiokafka():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
        try:
            await admin.start()
            await admin.delete_topics(names)
        finally:
            await admin.close()


def load_template(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise StackError(f"cannot read the alert index template {path}: {error.strerror}") from None
    except ValueError as error:
        raise StackError(f"the alert index template {path} is not valid JSON: {error}") from None


def install_index_template(url: str, path: Path, name: str = ALERTS_TEMPLATE_NAME) -> None:
    """PUT the composable index template at `path` as `_index_template/<name>`."""
    template = load_template(path)
    try:
        status, body = http_json(f"{url.rstrip('/')}/_index_template/{name}", method="PUT", body=template, timeout_s=30)
    except OSError as error:
        raise StackError(f"cannot reach OpenSearch at {url} to install the alert template: {error}") from None
    if status != 200:
        reason = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(reason, dict):
            reason = reason.get("reason", reason)
        raise StackError(f"OpenSearch rejected the alert template {path.name} (HTTP {status}): {reason}")
