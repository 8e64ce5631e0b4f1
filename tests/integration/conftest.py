"""Fixtures for tests on the real local stack (Kafka + OpenSearch on 127.0.0.1).

The `stack` fixture runs `peregrine stack up` once per test session: it reuses
a healthy running stack (the usual case, and never stops one it did not
start) or installs and starts one. A stack this session started is LEFT
RUNNING at the end too, so the next session starts in a second; stop it with
`peregrine stack down`.

Each test gets its own topics (`topic_factory`) and index (`index_name`), so
tests never see each other's data; both are deleted after the test.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

import pytest

from pipeline.stack.lifecycle import UpResult, up
from pipeline.stack.provision import delete_topics, ensure_topics
from pipeline.stack.settings import ALERTS_INDEX_PREFIX, StackSettings, TopicSpec


@dataclass(frozen=True, slots=True)
class RunningStack:
    settings: StackSettings
    result: UpResult

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def opensearch_url(self) -> str:
        return self.settings.opensearch_url


@pytest.fixture(scope="session")
async def stack() -> RunningStack:
    settings = StackSettings.from_env()
    result = await up(settings, say=lambda message: None)
    return RunningStack(settings, result)


@pytest.fixture(scope="session")
def bootstrap_servers(stack: RunningStack) -> str:
    """`host:port` of the Kafka broker, for aiokafka / Faust."""
    return stack.bootstrap_servers


@pytest.fixture(scope="session")
def opensearch_url(stack: RunningStack) -> str:
    return stack.opensearch_url


@pytest.fixture(scope="session")
async def opensearch(stack: RunningStack) -> AsyncIterator["AsyncOpenSearch"]:  # noqa: F821
    """One AsyncOpenSearch client for the session."""
    from opensearchpy import AsyncOpenSearch

    client = AsyncOpenSearch(hosts=[stack.opensearch_url], timeout=30)
    yield client
    await client.close()


def _slug(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return name[:40] or "test"


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def topic_factory(stack: RunningStack, request: pytest.FixtureRequest) -> AsyncIterator[TopicFactory]:
    """`await topic_factory(partitions=1)` -> a new, empty topic unique to this test
    (leaders elected, ready to produce). Deleted after the test."""
    created: list[str] = []

    async def make(partitions: int = 1, *, prefix: str = "test") -> str:
        name = f"{prefix}.{_slug(request)}.{uuid.uuid4().hex[:8]}"
        await ensure_topics(stack.bootstrap_servers, [TopicSpec(name, partitions)])
        created.append(name)
        return name

    yield make
    if created:
        await delete_topics(stack.bootstrap_servers, created)


@pytest.fixture
async def index_name(opensearch, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh index name unique to this test, matching the alert template's pattern
    (`peregrine-alerts-test-...`), so the template's mappings apply. Deleted after the test."""
    name = f"{ALERTS_INDEX_PREFIX}test-{_slug(request)}-{uuid.uuid4().hex[:8]}"
    yield name
    await opensearch.indices.delete(index=name, ignore_unavailable=True)


WORKER_TOPICS = ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter")
INPUT_TOPICS = ("syscall", "k8s_audit", "cloudtrail")


@pytest.fixture
async def worker_setup(stack: RunningStack, topic_factory: TopicFactory, opensearch, tmp_path):
    """Makes :class:`pipeline_harness.WorkerSetup` s for a test: each with its own topics
    (the input topics with ``partitions`` partitions, the others with one, plus
    ``extra_topics``), its own alert index prefix ``peregrine-alerts-<index_label>-<id>-``
    and worker settings ``extra``. After the test their workers are stopped and their
    indices deleted."""
    from pipeline_harness import WorkerSetup, delete_alert_indices

    made: list[WorkerSetup] = []

    async def make(partitions: int = 1, *, label: str = "pg", index_label: str = "test",
                   extra_topics: tuple[str, ...] = (), **extra: str) -> WorkerSetup:
        topics = {name: await topic_factory(partitions if name in INPUT_TOPICS else 1, prefix=f"{label}-{name}")
                  for name in (*WORKER_TOPICS, *extra_topics)}
        setup = WorkerSetup(stack.bootstrap_servers, stack.opensearch_url, topics,
                            f"{ALERTS_INDEX_PREFIX}{index_label}-{uuid.uuid4().hex[:8]}-", tmp_path / "worker", partitions,
                            extra=extra)
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.stop_all()
        await delete_alert_indices(opensearch, setup.index_prefix)

