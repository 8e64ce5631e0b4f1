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
import functools
import json
import signal
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pipeline.stream.batch import kafka_partition
from pipeline_harness import WorkerSetup, produce, read_topic, search_all, wait_for_health

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl"


@pytest.fixture
def make_setup(worker_setup):
    # PEREGRINE_RULES empty: the worker's defaults, correlations included
    return functools.partial(worker_setup, label="pg-corr", PEREGRINE_RULES="")


async def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, partition)])
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, partition))
    return None if found is None or found.offset < 0 else found.offset


async def wait_committed(bootstrap: str, group: str, topic: str, offset: int, timeout: float = 60.0, partition: int = 0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found = None
    while loop.time() < deadline:
        found = await committed_offset(bootstrap, group, topic, partition)
        if found == offset:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"committed offset of {topic} is {found}, expected {offset}")


async def one_drop_and_execute(s: WorkerSetup, opensearch):
    """The one 'Drop and execute' alert of the sequence, on the alert topic with its four
    events, and stored once in OpenSearch under its uuid. Returns its record and alert."""
    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, timeout=120, settle=3, setup=s)
    alerts = [json.loads(r.value) for r in records]
    assert [a["rule"] for a in alerts] == ["Drop and execute"], s.log_text()
    assert [e["id"] for e in alerts[0]["output_fields"]["corr.events"]] == [2000, 2002, 2005, 2007]
    hits = await search_all(opensearch, s.index_prefix, expect=1, timeout=120)
    assert [(h["_id"], h["_source"]["rule"]) for h in hits] == [(alerts[0]["uuid"], "Drop and execute")]
    return records[0], alerts[0]


async def test_a_worker_killed_mid_sequence_resumes_and_fires(make_setup, opensearch):
    s = await make_setup(1)
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

    record, alert = await one_drop_and_execute(s, opensearch)
    assert record.key == cid.encode()
    fields = alert["output_fields"]
    assert fields["corr.group"] == {"container.id": cid}
    assert [e["step"] for e in fields["corr.events"]] == ["shell", "drop", "chmod", "exec"]
    final = await wait_for_health(restarted, lambda h: h["correlation_groups"] == 0)
    assert final["dead_letters"] == {}, final


async def test_a_sequence_from_a_node_keyed_batch_completes_in_its_containers_partition(make_setup, opensearch):
    """The collector keys by node: the events reach the worker on the other partition, are
    forwarded to the repartition topic, and the group's state lives in the container's partition."""
    s = await make_setup(2)
    stream = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    cid = stream[0]["container.id"]
    home = kafka_partition(cid.encode(), 2)
    node = next(k for k in (f"node-{i}".encode() for i in range(50)) if kafka_partition(k, 2) != home)
    worker = s.start()
    await produce(s.bootstrap, s.topics["syscall"], [(node, b"\n".join(json.dumps(e).encode() for e in stream[:4])),
                                                      (node, b"\n".join(json.dumps(e).encode() for e in stream[4:]))])
    await one_drop_and_execute(s, opensearch)
    final = await wait_for_health(worker, lambda h: h["correlation_groups"] == 0 and h["batches"] >= 2)
    assert final["dead_letters"] == {}, final
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = opener.open(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).read().decode()
    forwarded = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("peregrine_repartitioned_events_total ")]
    assert forwarded == [len(stream)]  # every event went through the repartition topic


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_the_worker_taking_over_a_partition_finishes_its_sequences(make_setup, opensearch, tmp_path, store):
    """Two workers; the one owning the container's partition is killed mid-sequence; the other
    takes the partition over (after the session timeout), reindexes the groups recovered from
    the changelog, and the last step fires once. With either store: the other worker was the
    partition's standby, and a memory table restores it from offset 0, RocksDB from the offset
    it had persisted."""
    s = await make_setup(2)
    stream = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    cid = stream[0]["container.id"]
    home = f"{s.topics['syscall']}:{kafka_partition(cid.encode(), 2)}"
    workers = [s.start(PEREGRINE_STORE=store, PEREGRINE_DATA_DIR=str(tmp_path / name)) for name in ("a", "b")]
    states = [await wait_for_health(w, lambda h: any(tp.startswith(s.topics["syscall"] + ":") for tp in h["assignment"]))
              for w in workers]
    deadline = asyncio.get_running_loop().time() + 120
    while sum(home in state["assignment"] for state in states) != 1:  # the first assignment may still be moving
        assert asyncio.get_running_loop().time() < deadline, (states, s.log_text())
        await asyncio.sleep(1)
        states = [await wait_for_health(w, lambda h: True) for w in workers]
    owner, other = (workers[0], workers[1]) if home in states[0]["assignment"] else (workers[1], workers[0])

    await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[:6]])
    await wait_for_health(owner, lambda h: h["correlation_groups"] == 1)
    await wait_committed(s.bootstrap, s.app_id, s.topics["syscall"], 6, partition=kafka_partition(cid.encode(), 2))
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    await wait_for_health(other, lambda h: home in h["assignment"], timeout=180)
    await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[6:]])
    await one_drop_and_execute(s, opensearch)
    await wait_for_health(other, lambda h: h["correlation_groups"] == 0)


def forbidden_exec(n: int, user: str, namespace: str) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"x{n}", "stage": "ResponseComplete", "verb": "create",
            "user": {"username": user}, "objectRef": {"resource": "pods", "namespace": namespace, "name": f"web-{n}", "subresource": "exec"},
            "responseStatus": {"code": 403}, "stageTimestamp": f"2026-11-30T10:00:{n:02d}Z"}


async def test_a_users_forbidden_execs_in_two_partitions_meet_through_the_regroup_topic(make_setup, opensearch):
    """'Repeated forbidden kubectl exec' counts by ka.user.name, while audit events are keyed by
    namespace: a user's 20 denied execs in two namespaces arrive on both partitions (10 each,
    under the threshold), go through the worker's regroup topic keyed by the user's group, and
    make exactly one alert."""
    s = await make_setup(2)
    names = [f"ns-{i}" for i in range(50)]
    spread = [next(n for n in names if kafka_partition(n.encode(), 2) == p) for p in (0, 1)]
    events = [forbidden_exec(n, "mallory", spread[n % 2]) for n in range(20)]
    worker = s.start()
    await produce(s.bootstrap, s.topics["k8s_audit"], [(e["objectRef"]["namespace"].encode(), json.dumps(e).encode()) for e in events])
    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, timeout=120, settle=3, setup=s)
    alerts = [json.loads(r.value) for r in records]
    assert [a["rule"] for a in alerts] == ["Repeated forbidden kubectl exec"], s.log_text()
    assert sorted(e["id"] for e in alerts[0]["output_fields"]["corr.events"]) == sorted(e["auditID"] for e in events)
    hits = await search_all(opensearch, s.index_prefix, expect=1, timeout=120)
    assert [h["_id"] for h in hits] == [alerts[0]["uuid"]]
    final = await wait_for_health(worker, lambda h: h["batches"] >= 2)
    assert final["dead_letters"] == {}, final
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = opener.open(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).read().decode()
    regrouped = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("peregrine_regrouped_events_total ")]
    assert regrouped == [20.0]


async def test_a_correlation_alert_whose_delivery_was_abandoned_is_stored_after_the_restart(make_setup, opensearch, stack):
    """The sequence completes while OpenSearch is away: its alert goes to the alert topic and the
    group's new state to the changelog, but the batch is never acknowledged. The worker is
    stopped (it abandons the batch after its stop wait) and started again: it replays the batch
    over the recovered state, where the sequence has already fired. The alert must still be
    stored once OpenSearch is back; a replayed last step gives its alert again (same id)."""
    from urllib.parse import urlparse

    from pipeline_harness import TcpProxy

    url = urlparse(stack.opensearch_url)
    proxy = TcpProxy(url.hostname, url.port)
    await proxy.start()
    s = await make_setup(1, PEREGRINE_OPENSEARCH_URL=f"http://127.0.0.1:{proxy.port}")
    stream = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    cid = stream[0]["container.id"]
    worker = s.start(instance_id="corr-os", PEREGRINE_STORE="memory")
    try:
        await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[:6]])
        await wait_for_health(worker, lambda h: h["batches"] >= 1 and h["correlation_groups"] == 1)
        await wait_committed(s.bootstrap, s.app_id, s.topics["syscall"], 6)
        await proxy.stop()
        await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), json.dumps(e).encode()) for e in stream[6:]])
        on_topic = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, timeout=120, settle=0, setup=s)
        assert [json.loads(r.value)["rule"] for r in on_topic] == ["Drop and execute"]
        # the group's state after the match is in the changelog before the batch is acknowledged
        await wait_for_health(worker, lambda h: h["correlation_groups"] == 0)
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 60)
        restarted = s.restart(worker)
        await wait_for_health(restarted, lambda h: any(tp.startswith(s.topics["syscall"] + ":") for tp in h["assignment"]))
        await proxy.start()
        hits = await search_all(opensearch, s.index_prefix, expect=1, timeout=120)
        uuid = json.loads(on_topic[0].value)["uuid"]
        assert [(h["_id"], h["_source"]["rule"]) for h in hits] == [(uuid, "Drop and execute")], s.log_text()
        await wait_committed(s.bootstrap, s.app_id, s.topics["syscall"], len(stream))
    finally:
        if proxy.server is None:
            await proxy.start()
        await proxy.stop()
