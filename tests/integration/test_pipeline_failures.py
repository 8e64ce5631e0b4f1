"""The worker under failure: kill -9 mid-stream, OpenSearch away (also while a worker joins), two
workers sharing partitions."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from urllib.parse import urlparse

import orjson
import pytest

from pipeline.stream.batch import kafka_partition
from pipeline_harness import TcpProxy, health, ndjson, produce, read_topic, search_all, wait_for_health
from test_pipeline_e2e import setup, shell  # noqa: F401 - the fixture

T0 = 1_700_000_000_000_000_000


async def test_kill_9_mid_stream_then_restart_stores_every_alert_once_and_recovers_the_tree(setup, opensearch):
    s = await setup(partitions=1, PEREGRINE_BATCH_SIZE="5")
    worker = s.start()
    java = {"evt.type": "execve", "evt.time": T0, "proc.pid": 100, "proc.ppid": 1, "proc.name": "java",
            "proc.cmdline": "java -jar app.jar", "container.id": "ckill"}
    await produce(s.bootstrap, s.topics["syscall"], [(b"ckill", orjson.dumps(java))])
    shells = [(b"ckill", orjson.dumps(shell("ckill", 1000 + i, T0 + 10 + i))) for i in range(600)]
    await produce(s.bootstrap, s.topics["syscall"], shells)
    await read_topic(s.bootstrap, s.topics["alerts"], expect=30, settle=0, setup=s)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # memory store: the tree can only come back from the changelog. Dynamic membership (the
    # default): the group reassigns the partitions once the killed member's session (60 s) expires
    s.restart(worker)
    curl = {"evt.type": "execve", "evt.time": T0 + 5000, "proc.pid": 200, "proc.ppid": 100, "proc.name": "curl",
            "proc.cmdline": "curl http://x", "container.id": "ckill"}
    await produce(s.bootstrap, s.topics["syscall"], [(b"ckill", orjson.dumps(curl))])
    hits = await search_all(opensearch, s.index_prefix, expect=601, timeout=240)
    rules = sorted(h["_source"]["rule"] for h in hits)
    assert len(hits) == 601, s.log_text()
    assert rules.count("Shell in container") == 600 and rules.count("Java spawned downloader") == 1
    assert len({h["_id"] for h in hits}) == 601
    on_topic = await read_topic(s.bootstrap, s.topics["alerts"], expect=601, setup=s)
    assert len({orjson.loads(r.value)["uuid"] for r in on_topic}) == 601  # at least once on Kafka


async def test_opensearch_away_then_back_loses_no_alert(setup, opensearch, stack):
    url = urlparse(stack.opensearch_url)
    proxy = TcpProxy(url.hostname, url.port)
    await proxy.start()
    s = await setup(partitions=1, PEREGRINE_OPENSEARCH_URL=f"http://127.0.0.1:{proxy.port}")
    # static membership: the restarted worker gets the partition back at once, so it processes the
    # held batch again while OpenSearch is still away, and must store it once OpenSearch is back
    s.start(instance_id="os-0")
    try:
        await produce(s.bootstrap, s.topics["syscall"], [(b"cos", orjson.dumps(shell("cos", 1, T0)))])
        assert len(await search_all(opensearch, s.index_prefix, expect=1)) == 1
        await proxy.stop()
        await produce(s.bootstrap, s.topics["syscall"], [(b"cos", ndjson([shell("cos", 10 + i, T0 + 10 + i) for i in range(50)]))])
        await read_topic(s.bootstrap, s.topics["alerts"], expect=51, setup=s)  # Kafka side flows
        await asyncio.sleep(3)
        state = health(s.workers[0])
        assert state is not None and state["waiting_on"] == "opensearch", state
        # the held batch is not acked: a worker killed now loses nothing either
        s.workers[0].send_signal(signal.SIGKILL)
        s.workers[0].wait()
        restarted = s.restart(s.workers[0])
        await wait_for_health(restarted, lambda h: h["waiting_on"] == "opensearch", timeout=120)
        # OpenSearch away at start-up is an outage, not a misconfiguration: a warning, and it runs
        assert f"warning: OpenSearch at http://127.0.0.1:{proxy.port} does not answer" in s.logs[-1].read_text()
        # SIGTERM now: the stop waits for the held batch (10 s), then ends without acking it (it
        # used to wait for OpenSearch forever); the batch is processed again after the next start
        restarted.send_signal(signal.SIGTERM)
        try:
            code = restarted.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError("SIGTERM did not stop a worker waiting on OpenSearch\n" + s.log_text()) from None
        assert code == 0, s.log_text()
        assert "not delivered after 10s (waiting on opensearch)" in s.logs[-1].read_text(), s.log_text()
        restarted = s.restart(restarted)
        await wait_for_health(restarted, lambda h: h["waiting_on"] == "opensearch", timeout=120)
        await proxy.start()
        hits = await search_all(opensearch, s.index_prefix, expect=51, timeout=120)
        assert len(hits) == 51, s.log_text()
        assert len({h["_id"] for h in hits}) == 51
    finally:
        await proxy.stop()


def syscall_partitions(state: dict | None, topic: str) -> list[str]:
    return [tp for tp in (state or {}).get("assignment", ()) if tp.startswith(topic + ":")]


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await admin.close()
    return {p: (found[TopicPartition(topic, p)].offset if TopicPartition(topic, p) in found else None) for p in range(partitions)}


async def test_a_worker_joining_while_opensearch_is_away_neither_stalls_the_group_nor_loses_an_alert(setup, opensearch, stack):
    """A rebalance waits for the batches in flight, and a batch waits for OpenSearch. The worker
    holding one gives up the revoked partitions' batches after PEREGRINE_REVOKE_WAIT_S (5 s), their
    offsets uncommitted, so the rebalance ends long before Kafka's rebalance timeout (60 s; the
    group used to stall that long): the newcomer gets its partition within seconds, each worker
    reads its partition again from the committed offset and holds its events (not acked). OpenSearch
    back, each alert is stored once and every partition's committed offset reaches its end."""
    url = urlparse(stack.opensearch_url)
    proxy = TcpProxy(url.hostname, url.port)
    await proxy.start()
    s = await setup(partitions=2, PEREGRINE_OPENSEARCH_URL=f"http://127.0.0.1:{proxy.port}")
    topic = s.topics["syscall"]
    first = s.start()
    try:
        await wait_for_health(first, lambda h: len(syscall_partitions(h, topic)) == 2)
        cids = [f"c{n}" for n in range(8)]
        assert {kafka_partition(c.encode(), 2) for c in cids} == {0, 1}
        await produce(s.bootstrap, topic, [(c.encode(), orjson.dumps(shell(c, 1, T0))) for c in cids])
        assert len(await search_all(opensearch, s.index_prefix, expect=8)) == 8
        await proxy.stop()
        await produce(s.bootstrap, topic, [(c.encode(), ndjson([shell(c, 10 + i, T0 + 10 + i) for i in range(5)])) for c in cids])
        await wait_for_health(first, lambda h: h["waiting_on"] == "opensearch", timeout=60)
        second = s.start()
        # the first worker gives up its held batch after 5 s and the group goes on: the newcomer has its
        # partition well before Kafka's rebalance timeout (60 s), which is when it used to get any
        await wait_for_health(second, lambda h: len(syscall_partitions(h, topic)) == 1, timeout=20)
        await wait_for_health(first, lambda h: len(syscall_partitions(h, topic)) == 1, timeout=30)
        first_log = s.logs[0].read_text(errors="replace")
        assert "message(s) of the revoked partitions not delivered after 5s (waiting on opensearch)" in first_log, s.log_text()
        # each reads its partition again from the committed offset and holds those events, unacked
        await wait_for_health(second, lambda h: h["waiting_on"] == "opensearch", timeout=60)
        await wait_for_health(first, lambda h: h["waiting_on"] == "opensearch", timeout=60)
        per_partition = {p: sum(1 for c in cids if kafka_partition(c.encode(), 2) == p) for p in (0, 1)}
        assert await committed_offsets(s.bootstrap, s.app_id, topic, 2) == per_partition  # nothing undelivered committed
        await proxy.start()
        hits = await search_all(opensearch, s.index_prefix, expect=48, timeout=120)
        assert len(hits) == 48 and len({h["_id"] for h in hits}) == 48, s.log_text()
        # no partition is left behind an offset given up: each one's committed offset reaches its end
        ends = {p: 2 * n for p, n in per_partition.items()}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (committed := await committed_offsets(s.bootstrap, s.app_id, topic, 2)) != ends and loop.time() < deadline:
            await asyncio.sleep(0.5)
        assert committed == ends, (committed, s.log_text())
        # both workers carry on in one group: new events are processed
        await produce(s.bootstrap, topic, [(c.encode(), orjson.dumps(shell(c, 99, T0 + 99))) for c in cids])
        hits = await search_all(opensearch, s.index_prefix, expect=56, timeout=120)
        assert len(hits) == 56 and len({h["_id"] for h in hits}) == 56, s.log_text()
        states = [await wait_for_health(w, lambda h: len(syscall_partitions(h, topic)) == 1) for w in (first, second)]
        assert sorted(sum((syscall_partitions(h, topic) for h in states), [])) == [f"{topic}:0", f"{topic}:1"], states
        # the outage is told once a retry, by the sink, not with opensearch-py's traceback each time
        text = "".join(log.read_text(errors="replace") for log in s.logs)
        assert "unavailable (ConnectionError" in text and "retrying in" in text
        assert "Traceback (most recent call last)" not in text, s.log_text()
    finally:
        await proxy.stop()


async def test_two_workers_in_one_group_share_partitions_and_store_each_alert_once(setup, opensearch, tmp_path):
    s = await setup(partitions=4, PEREGRINE_STORE="rocksdb")
    a = s.start(PEREGRINE_DATA_DIR=str(tmp_path / "a"))
    b = s.start(PEREGRINE_DATA_DIR=str(tmp_path / "b"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    assignments: list = [None, None]
    while loop.time() < deadline:
        assignments = [health(a), health(b)]
        if all(h and any(tp.startswith(s.topics["syscall"]) for tp in h["assignment"]) for h in assignments):
            break
        await asyncio.sleep(1)
    owned = [{tp for tp in h["assignment"] if tp.startswith(s.topics["syscall"] + ":")} for h in assignments if h]
    assert len(owned) == 2 and all(owned), (assignments, s.log_text())
    assert not owned[0] & owned[1] and len(owned[0] | owned[1]) == 4
    messages = [(f"c{c}".encode(), ndjson([shell(f"c{c}", 10 + i, T0 + c * 100 + i) for i in range(5)])) for c in range(40)]
    await produce(s.bootstrap, s.topics["syscall"], messages)
    # a rebalance may still follow the first assignment (Faust's own topics appearing): generous deadline
    hits = await search_all(opensearch, s.index_prefix, expect=200, timeout=180)
    assert len(hits) == 200 and len({h["_id"] for h in hits}) == 200, (len(hits), health(a), health(b), s.log_text())
    batches = [health(a)["batches"], health(b)["batches"]]
    assert all(n > 0 for n in batches), batches
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = b"".join(opener.open(f"http://127.0.0.1:{w.web_port}/metrics", timeout=5).read() for w in (a, b)).decode()
    # at least once: a partition the group had not committed yet goes back to its beginning when the
    # rebalance that follows the first assignment ends (pipeline/stream/rewind.py), so the events its
    # first owner took before it may be taken again; their alerts are still stored once (above)
    assert sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("peregrine_events_total ")) >= 200
    # /debug/consumer: each worker's aiokafka positions on the syscall partitions it owns add up to the 40 messages
    debug = [orjson.loads(opener.open(f"http://127.0.0.1:{w.web_port}/debug/consumer", timeout=5).read()) for w in (a, b)]
    positions = {tp: state["position"] for d in debug for tp, state in d["aiokafka"].items() if tp.startswith(s.topics["syscall"] + ":")}
    assert sorted(positions) == sorted(owned[0] | owned[1]) and sum(positions.values()) == 40, debug
    assert all(d["flow_active"] and not d["rebalancing"] for d in debug), debug


async def test_opensearch_stopped_then_restarted_loses_no_alert(setup, opensearch, stack):
    """The real server stopped (not a proxy cut): alerts wait in the worker, unacked, and are
    all stored once it is back."""
    from pipeline.stack import opensearch as opensearch_server
    from pipeline.stack.lifecycle import up
    from pipeline.stack.process import running_pid, stop

    server = opensearch_server.server(stack.settings)
    pid = running_pid(server)
    if pid is None:
        pytest.skip("this test stops and restarts the OpenSearch `peregrine stack up` started; this one is another's")
    s = await setup(partitions=1)
    s.start()
    await produce(s.bootstrap, s.topics["syscall"], [(b"cstop", orjson.dumps(shell("cstop", 1, T0)))])
    assert len(await search_all(opensearch, s.index_prefix, expect=1)) == 1
    try:
        await asyncio.to_thread(stop, server, pid, 60)
        await produce(s.bootstrap, s.topics["syscall"], [(b"cstop", ndjson([shell("cstop", 10 + i, T0 + 10 + i) for i in range(50)]))])
        await read_topic(s.bootstrap, s.topics["alerts"], expect=51, setup=s)  # Kafka side flows
        await wait_for_health(s.workers[0], lambda h: h["waiting_on"] == "opensearch", timeout=60)
        await asyncio.sleep(5)  # stopped for a while: the sink backs off and retries
    finally:
        await up(stack.settings, say=lambda message: None)  # OpenSearch back (Kafka is left running)
    hits = await search_all(opensearch, s.index_prefix, expect=51, timeout=120)
    assert len(hits) == 51, s.log_text()
    assert len({h["_id"] for h in hits}) == 51
    state = await wait_for_health(s.workers[0], lambda h: h["waiting_on"] is None and h["alerts_stored"] >= 51, timeout=60)
    assert state["status"] == "ok"


async def test_kafka_stopped_then_restarted_the_worker_carries_on(setup, opensearch, stack):
    """The broker itself stopped for a while and started again: the worker neither dies nor
    hangs; it reconnects, rejoins its group and turns the next events into alerts."""
    from pipeline.stack import kafka as kafka_server
    from pipeline.stack.lifecycle import up
    from pipeline.stack.process import running_pid, stop

    server = kafka_server.server(stack.settings)
    pid = running_pid(server)
    if pid is None:
        pytest.skip("this test stops and restarts the Kafka `peregrine stack up` started; this one is another's")
    s = await setup(partitions=1)
    worker = s.start(instance_id="kafka-0")
    await produce(s.bootstrap, s.topics["syscall"], [(b"ck", orjson.dumps(shell("ck", 1, T0)))])
    assert len(await search_all(opensearch, s.index_prefix, expect=1)) == 1
    try:
        await asyncio.to_thread(stop, server, pid, 60)
        await asyncio.sleep(15)  # a while: heartbeats, fetches and commits fail meanwhile
        assert worker.poll() is None, s.log_text()
    finally:
        await up(stack.settings, say=lambda message: None)  # Kafka back (OpenSearch is left running)
    await produce(s.bootstrap, s.topics["syscall"], [(b"ck", ndjson([shell("ck", 10 + i, T0 + 10 + i) for i in range(20)]))])
    hits = await search_all(opensearch, s.index_prefix, expect=21, timeout=120)
    assert len(hits) == 21 and len({h["_id"] for h in hits}) == 21, s.log_text()
    assert worker.poll() is None
    on_topic = await read_topic(s.bootstrap, s.topics["alerts"], expect=21, setup=s)
    assert len({orjson.loads(r.value)["uuid"] for r in on_topic}) == 21
