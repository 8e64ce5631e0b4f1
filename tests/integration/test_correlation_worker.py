"""Correlation state in the worker's changelog-backed table survives kill -9.

A real `peregrine worker` (its default rules: Peregrine's rules and
rules/peregrine_correlations.yaml) sees the first steps of "Drop and
execute", is killed with SIGKILL once their offsets are committed, is
started again, and the last step still completes the sequence: exactly one
alert with all four contributing events, on the alert topic and in
OpenSearch.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pipeline_harness import WorkerSetup, produce, read_topic, search_all, wait_for_health

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl"


@pytest.fixture
async def worker_setup(stack, topic_factory, opensearch, tmp_path):
    topics = {name: await topic_factory(1, prefix=f"pg-corr-{name}")
              for name in ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter")}
    setup = WorkerSetup(stack.bootstrap_servers, stack.opensearch_url, topics,
                        f"peregrine-alerts-test-{uuid.uuid4().hex[:8]}-", tmp_path / "worker", 1,
                        extra={"PEREGRINE_RULES": ""})  # the worker's defaults, correlations included
    yield setup
    setup.stop_all()
    await opensearch.indices.delete(index=f"{setup.index_prefix}*", ignore_unavailable=True)


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, 0)])
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, 0))
    return None if found is None or found.offset < 0 else found.offset


async def wait_committed(bootstrap: str, group: str, topic: str, offset: int, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found = None
    while loop.time() < deadline:
        found = await committed_offset(bootstrap, group, topic)
        if found == offset:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"committed offset of {topic} is {found}, expected {offset}")


async def test_a_worker_killed_mid_sequence_resumes_and_fires(worker_setup, opensearch):
    s = worker_setup
    stream = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    cid = stream[0]["container.id"]
    worker = s.start(instance_id="corr-0", PEREGRINE_STORE="memory")  # memory: state only from the changelog

    # shell, download, another write, chmod 644, chmod +x: three of the four steps done
    await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[:6]])
    state = await wait_for_health(worker, lambda h: h["batches"] >= 1 and h["correlation_groups"] == 1)
    # every one of the six is processed and its offset committed: a restarted worker does not
    # read them again, so the partial match can only come back from the changelog
    await wait_committed(s.bootstrap, s.app_id, s.topics["syscall"], 6)
    assert await read_topic(s.bootstrap, s.topics["alerts"], expect=0) == [], state
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert worker.returncode == -signal.SIGKILL

    restarted = s.restart(worker)
    await wait_for_health(restarted, lambda h: any(tp.startswith(s.topics["syscall"] + ":") for tp in h["assignment"]))
    # ls, then the dropped file runs
    await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[6:]])

    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, timeout=120, settle=3, setup=s)
    alerts = [json.loads(r.value) for r in records]
    assert [a["rule"] for a in alerts] == ["Drop and execute"], s.log_text()
    alert = alerts[0]
    assert records[0].key == cid.encode()
    fields = alert["output_fields"]
    assert fields["corr.group"] == {"container.id": cid}
    assert [e["id"] for e in fields["corr.events"]] == [2000, 2002, 2005, 2007]
    assert [e["step"] for e in fields["corr.events"]] == ["shell", "drop", "chmod", "exec"]
    hits = await search_all(opensearch, s.index_prefix, expect=1, timeout=120)
    assert [(h["_id"], h["_source"]["rule"]) for h in hits] == [(alert["uuid"], "Drop and execute")]
    final = await wait_for_health(restarted, lambda h: h["correlation_groups"] == 0)
    assert final["dead_letters"] == {}, final
