"""Events in, alerts out: a real `peregrine worker` on the local stack."""

from __future__ import annotations


import orjson
import pytest

from pipeline.stream.batch import kafka_partition
from pipeline_harness import ROOT, ndjson, produce, read_topic, search_all


@pytest.fixture
def setup(worker_setup):
    """``await setup(partitions, **worker settings)``: conftest's worker_setup (also imported by
    test_pipeline_failures and test_pipeline_state_bounds)."""
    return worker_setup


@pytest.fixture
def audit_events(monkeypatch):
    """Builders of realistic K8s audit events (tests/unit/live_audit_events.py)."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "unit"))
    import live_audit_events

    return live_audit_events


def privileged_pod_created(audit_events, stage_timestamp: str = "2023-11-14T22:13:20.000000Z") -> dict:
    pod = audit_events.privileged_pod("debug", "shop")
    event = audit_events.audit_event("create", "pods", name="debug", request=audit_events.as_request(pod), response=pod,
                                     user="eve@example.com", audit_id="9a1e7c42-e2e0-4f5b-8d11-000000000001")
    event["stageTimestamp"] = stage_timestamp
    return event


def shell(container: str, pid: int, t: int) -> dict:
    return {"evt.type": "execve", "evt.time": t, "evt.num": t, "proc.pid": pid, "proc.ppid": 1,
            "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": container}


async def test_events_in_alerts_on_topic_and_in_opensearch(setup, opensearch, audit_events):
    s = await setup(partitions=2, PEREGRINE_CONFIG_AUDIT="false")  # the Polaris checks on the pod: test_live_audit.py
    s.start()
    # 3 containers x 4 shells in batched NDJSON messages keyed by container, plus quiet events
    messages = []
    for c in range(3):
        cid = f"c{c}ab12"
        events = [shell(cid, 100 + i, 1_700_000_000_000_000_000 + c * 100 + i) for i in range(4)]
        events += [{"evt.type": "open", "evt.time": 1_700_000_000_000_000_000 + i, "proc.pid": 5, "proc.name": "nginx", "container.id": cid} for i in range(10)]
        messages.append((cid.encode(), ndjson(events)))
    # a JSON array message and a single-event message
    messages.append((b"c9", orjson.dumps([shell("c9", 7, 1_700_000_000_100_000_000)])))
    messages.append((b"c8", orjson.dumps(shell("c8", 8, 1_700_000_000_200_000_000))))
    await produce(s.bootstrap, s.topics["syscall"], messages)
    await produce(s.bootstrap, s.topics["k8s_audit"], [(b"shop", orjson.dumps(privileged_pod_created(audit_events)))])

    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=15, setup=s)
    alerts = [orjson.loads(r.value) for r in records]
    assert len(alerts) == 15, s.log_text()
    assert sorted(a["rule"] for a in alerts).count("Shell in container") == 14
    assert [a["rule"] for a in alerts if a["source"] == "k8s_audit"] == ["Privileged pod"]
    assert await read_topic(s.bootstrap, s.topics["deadletter"], expect=0) == []
    assert {r.key for r in records if orjson.loads(r.value)["source"] == "syscall"} == {b"c0ab12", b"c1ab12", b"c2ab12", b"c9", b"c8"}
    hits = await search_all(opensearch, s.index_prefix, expect=15)
    assert len(hits) == 15
    assert {h["_id"] for h in hits} == {a["uuid"] for a in alerts}
    assert {h["_index"] for h in hits} == {f"{s.index_prefix}2023.11.14"}


async def test_collectors_may_compress_with_any_kafka_codec(setup, opensearch):
    """A collector's record batches compressed with each codec Kafka has; the worker's own
    output (alerts, repartitioned events) is compressed too (zstd by default)."""
    s = await setup(partitions=2)
    s.start()
    t = 1_700_000_000_000_000_000
    codecs = [None, "gzip", "snappy", "lz4", "zstd"]
    homes = {kafka_partition(f"{c or 'none'}-c".encode(), 2) for c in codecs}
    assert homes == {0, 1}  # some containers live on node-a's partition, some are forwarded
    for n, codec in enumerate(codecs):
        cid = f"{codec or 'none'}-c"
        # keyed by node, not by container: half of them are forwarded through the repartition topic
        await produce(s.bootstrap, s.topics["syscall"], [(b"node-a", ndjson([shell(cid, 10 + i, t + 10 * n + i) for i in range(3)]))],
                      compression=codec)
    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=15, setup=s)
    alerts = [orjson.loads(r.value) for r in records]
    assert len(alerts) == 15, s.log_text()
    assert sorted(r.key for r in records) == sorted(f"{c or 'none'}-c".encode() for c in codecs for _ in range(3))
    assert await read_topic(s.bootstrap, s.topics["deadletter"], expect=0) == []
    assert len(await search_all(opensearch, s.index_prefix, expect=15)) == 15


async def test_parent_only_known_from_the_process_tree(setup, opensearch):
    s = await setup(partitions=1)
    s.start()
    t = 1_700_000_000_000_000_000
    java = {"evt.type": "execve", "evt.time": t, "proc.pid": 100, "proc.ppid": 1, "proc.name": "java",
            "proc.cmdline": "java -jar app.jar", "container.id": "ctree"}
    curl = {"evt.type": "execve", "evt.time": t + 1, "proc.pid": 200, "proc.ppid": 100, "proc.name": "curl",
            "proc.cmdline": "curl http://x/y", "container.id": "ctree"}  # no proc.pname
    await produce(s.bootstrap, s.topics["syscall"], [(b"ctree", orjson.dumps(java))])
    await produce(s.bootstrap, s.topics["syscall"], [(b"ctree", orjson.dumps(curl))])
    records = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, setup=s)
    alerts = [orjson.loads(r.value) for r in records]
    assert [a["rule"] for a in alerts] == ["Java spawned downloader"], s.log_text()
    assert alerts[0]["output_fields"]["proc.pname"] == "java"
    assert alerts[0]["output_fields"]["proc.pcmdline"] == "java -jar app.jar"
    hits = await search_all(opensearch, s.index_prefix, expect=1)
    assert [h["_source"]["rule"] for h in hits] == ["Java spawned downloader"]


async def test_bad_messages_go_to_the_dead_letter_topic_and_good_ones_flow(setup, opensearch):
    s = await setup(partitions=1, PEREGRINE_MAX_MESSAGE_BYTES="2000")
    s.start()
    t = 1_700_000_000_000_000_000
    await produce(s.bootstrap, s.topics["syscall"], [
        (b"cx", b"{not json"),
        (b"cx", orjson.dumps(shell("cx", 1, t))),
        (b"cx", b"x" * 5000),
        (b"cx", b"[1, 2]"),
        (b"cx", orjson.dumps(shell("cx", 2, t + 1))),
    ])
    letters = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["deadletter"], expect=3, setup=s)]
    assert sorted(x["reason"] for x in letters) == ["oversized", "undecodable", "undecodable"], s.log_text()
    assert sorted(x["offset"] for x in letters) == [0, 2, 3]
    assert all(x["topic"] == s.topics["syscall"] and x["partition"] == 0 for x in letters)
    assert next(x for x in letters if x["offset"] == 0)["original"] == "{not json"
    alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=2, setup=s)]
    assert len(alerts) == 2
    assert len(await search_all(opensearch, s.index_prefix, expect=2)) == 2


async def test_long_values_neither_stop_the_worker_nor_keep_an_alert_out_of_opensearch(setup, opensearch):
    """A 600 KB command line (a padded base64 payload) gives an alert of 1.2 MB, over Kafka's
    record limit: it used to stop the worker at every restart. A 800 KB binary message's dead
    letter (base64) was over it too. And a value over 32766 bytes kept the alert out of the index."""
    s = await setup(partitions=1)
    worker = s.start()
    t = 1_700_000_000_000_000_000
    payload = "QUJD" * 150_000
    padded = dict(shell("clong", 1, t), **{"proc.cmdline": f"bash -c 'echo {payload} | base64 -d | sh'"})
    await produce(s.bootstrap, s.topics["syscall"], [
        (b"clong", orjson.dumps(padded)),
        (b"clong", bytes(range(256)) * 3200),  # 800 KB, not UTF-8
        (b"clong", orjson.dumps(shell("clong", 2, t + 1))),
    ])
    alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=2, setup=s)]
    assert worker.poll() is None, s.log_text()
    [long_alert] = [a for a in alerts if a["output_fields"]["proc.cmdline"] != "bash -i"]
    cut = long_alert["output_fields"]["proc.cmdline"]
    assert cut.startswith(f"bash -c 'echo {payload[:1000]}") and cut.endswith(" bytes]") and len(cut) < 70_000
    [letter] = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["deadletter"], expect=1, setup=s)]
    assert letter["reason"] == "undecodable" and letter["size"] == 819_200 and letter["truncated"] is True
    assert letter["encoding"] == "base64" and letter["offset"] == 1
    hits = {h["_source"]["uuid"]: h["_source"] for h in await search_all(opensearch, s.index_prefix, expect=2)}
    stored = hits[long_alert["uuid"]]
    assert len(stored["output_fields"]["proc.cmdline"].encode()) < 8300  # indexed: cut under Lucene's term limit
    assert stored["long_values"]["proc.cmdline"] == cut  # whole, as on the alert topic
    found = await opensearch.search(index=f"{s.index_prefix}*", body={"query": {"match": {"output": "echo"}}})
    assert [h["_source"]["uuid"] for h in found["hits"]["hits"]] == [stored["uuid"]]


async def test_events_keyed_by_something_else_are_repartitioned_by_container(setup, opensearch):
    s = await setup(partitions=2)
    s.start()
    t = 1_700_000_000_000_000_000
    # pick two containers that hash to different partitions; send both on partition-0's key
    names = [f"k{i}" for i in range(50)]
    c0 = next(n for n in names if kafka_partition(n.encode(), 2) == 0)
    c1 = next(n for n in names if kafka_partition(n.encode(), 2) == 1)
    java = {"evt.type": "execve", "evt.time": t, "proc.pid": 100, "proc.ppid": 1, "proc.name": "java", "proc.cmdline": "java", "container.id": c1}
    curl = {"evt.type": "execve", "evt.time": t + 1, "proc.pid": 200, "proc.ppid": 100, "proc.name": "curl", "container.id": c1}
    await produce(s.bootstrap, s.topics["syscall"], [(b"node-a", ndjson([java, shell(c0, 5, t), curl]))])
    alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=2, setup=s)]
    assert sorted(a["rule"] for a in alerts) == ["Java spawned downloader", "Shell in container"], s.log_text()


async def test_events_failing_their_schema_are_dead_lettered_with_reason_and_coordinates_while_good_ones_flow(setup, opensearch, audit_events):
    s = await setup(partitions=1, PEREGRINE_CONFIG_AUDIT="false")
    s.start()
    t = 1_700_000_000_000_000_000
    no_time = {"evt.type": "execve", "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": "cs"}
    bad_type = shell("cs", 3, t + 3) | {"evt.type": 5}
    await produce(s.bootstrap, s.topics["syscall"], [
        (b"cs", orjson.dumps(shell("cs", 1, t))),  # offset 0: good
        (b"cs", ndjson([shell("cs", 2, t + 2), no_time, bad_type, shell("cs", 4, t + 4)])),  # offset 1: two good, two bad
    ])
    not_an_audit_event = {"verb": "create", "objectRef": {"resource": "pods", "namespace": "shop"}}
    await produce(s.bootstrap, s.topics["k8s_audit"], [
        (b"shop", orjson.dumps(not_an_audit_event)),  # offset 0: no kind/apiVersion
        (b"shop", orjson.dumps(privileged_pod_created(audit_events))),  # offset 1: good
    ])
    letters = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["deadletter"], expect=3, setup=s)]
    assert len(letters) == 3, s.log_text()
    assert all(x["reason"] == "schema" for x in letters)
    by_where = {(x["topic"], x["partition"], x["offset"], x["index"]): x for x in letters}
    assert set(by_where) == {(s.topics["syscall"], 0, 1, 1), (s.topics["syscall"], 0, 1, 2), (s.topics["k8s_audit"], 0, 0, 0)}
    assert "'evt.time' is a required property" in by_where[(s.topics["syscall"], 0, 1, 1)]["detail"]
    assert "at evt.type" in by_where[(s.topics["syscall"], 0, 1, 2)]["detail"]
    assert "k8s_audit event does not fit its schema" in by_where[(s.topics["k8s_audit"], 0, 0, 0)]["detail"]
    assert orjson.loads(by_where[(s.topics["syscall"], 0, 1, 1)]["original"]) == no_time  # the event itself, not the batch
    alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=4, setup=s)]
    assert sorted(a["rule"] for a in alerts) == ["Privileged pod", "Shell in container", "Shell in container", "Shell in container"]
    assert sorted(a["output_fields"]["evt.time"] - t for a in alerts if a["source"] == "syscall") == [0, 2, 4]
    assert len(await search_all(opensearch, s.index_prefix, expect=4)) == 4


async def test_alerts_routed_by_priority_reach_their_priority_topic_too(setup, opensearch, audit_events, stack):
    from pipeline.stack.provision import delete_topics
    from pipeline.stream.settings import PipelineSettings

    s = await setup(partitions=1, PEREGRINE_ROUTE_BY_PRIORITY="true", PEREGRINE_CONFIG_AUDIT="false")
    routed = {p: f"{s.topics['alerts']}.{p}" for p in ("critical", "warning", "notice", "error")}
    s.start()
    try:
        t = 1_700_000_000_000_000_000
        java = {"evt.type": "execve", "evt.time": t, "proc.pid": 100, "proc.ppid": 1, "proc.name": "java",
                "proc.cmdline": "java -jar app.jar", "container.id": "cprio"}
        curl = {"evt.type": "execve", "evt.time": t + 1, "proc.pid": 200, "proc.ppid": 100, "proc.name": "curl",
                "proc.cmdline": "curl http://x/y", "container.id": "cprio"}
        await produce(s.bootstrap, s.topics["syscall"], [(b"cprio", ndjson([java, curl, shell("cprio", 300, t + 2)]))])
        await produce(s.bootstrap, s.topics["k8s_audit"], [(b"shop", orjson.dumps(privileged_pod_created(audit_events)))])
        alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=3, setup=s)]
        assert sorted((a["priority"], a["rule"]) for a in alerts) == [
            ("Critical", "Java spawned downloader"), ("Notice", "Shell in container"), ("Warning", "Privileged pod")], s.log_text()
        expected = {"critical": ["Java spawned downloader"], "warning": ["Privileged pod"], "notice": ["Shell in container"], "error": []}
        for priority, rules in expected.items():
            records = await read_topic(s.bootstrap, routed[priority], expect=len(rules), settle=0.5, setup=s)
            assert [orjson.loads(r.value)["rule"] for r in records] == rules, priority
            assert {orjson.loads(r.value)["uuid"] for r in records} <= {a["uuid"] for a in alerts}
        assert len(await search_all(opensearch, s.index_prefix, expect=3)) == 3  # stored once, whatever the routing
    finally:
        s.stop_all()
        # the worker created all eight priority topics at start-up: not the test's topic_factory's to delete
        await delete_topics(stack.bootstrap_servers, list(PipelineSettings(alerts_topic=s.topics["alerts"]).priority_topics().values()))
