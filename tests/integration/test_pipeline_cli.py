"""`peregrine worker` misconfigured exits with a clear message; retention deletes old indices."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from pipeline_harness import PEREGRINE, ROOT, free_port


def run(env_extra: dict[str, str], *args: str) -> tuple[int, str, float]:
    env = dict(os.environ, PEREGRINE_STARTUP_TIMEOUT_S="5", PEREGRINE_RULES=str(ROOT / "tests/data/pipeline/rules.yaml"), **env_extra)
    began = time.monotonic()
    done = subprocess.run([PEREGRINE, *args], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - began


def test_unreachable_broker_is_a_clear_error(stack, tmp_path):
    code, out, _ = run({"PEREGRINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}, "worker")
    assert code == 2 and "refused the connection (ConnectionRefusedError): nothing listens on" in out and "Traceback" not in out
    events = tmp_path / "events.jsonl"
    events.write_text('{"evt.type": "execve", "container.id": "c1"}\n')
    code, out, _ = run({"PEREGRINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}, "replay", str(events))
    assert code == 2 and "refused the connection" in out
    assert "Unable connect" not in out  # aiokafka's own line, before ours


def test_missing_topic_is_a_clear_error(stack):
    code, out, _ = run({"PEREGRINE_SYSCALL_TOPIC": "no-such-topic-here"}, "worker")
    assert code == 2 and "missing" in out and "no-such-topic-here" in out


def test_a_partition_count_other_than_the_syscall_topics_is_a_clear_error(stack):
    # the stack's syscall topic has 4 partitions; Faust would crash at the first event
    code, out, _ = run({"PEREGRINE_PARTITIONS": "3", "PEREGRINE_APP_ID": f"pg-test-parts-{os.getpid()}"}, "worker")
    assert code == 2 and "Traceback" not in out
    assert "PEREGRINE_PARTITIONS is 3 but peregrine.events.syscall has 4 partition(s)" in out


def test_a_taken_web_port_is_a_clear_error(stack):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, _ = run({"PEREGRINE_WEB_PORT": str(port)}, "worker")
    assert code == 2 and "Traceback" not in out
    assert f"web port {port} (/health, /metrics) is taken" in out


def test_tls_to_a_plain_http_opensearch_is_a_clear_error(stack):
    url = stack.opensearch_url.replace("http://", "https://")
    code, out, _ = run({"PEREGRINE_OPENSEARCH_URL": url}, "worker")
    assert code == 2 and "Traceback" not in out
    assert f"TLS to OpenSearch at {url} failed" in out and "WRONG_VERSION_NUMBER" in out


async def test_retention_deletes_old_daily_indices(stack, opensearch):
    """Also more of them than one request line can name (OpenSearch takes 4096 bytes): a first
    retention on a cluster that has kept its daily indices for months."""
    from datetime import date, timedelta

    prefix = f"peregrine-alerts-test-ret{os.getpid()}-"
    old = [f"{prefix}{date(2020, 1, 1) + timedelta(days=n):%Y.%m.%d}" for n in range(120)]
    assert len(",".join(old)) > 4096
    for name in old + [prefix + "2099.01.01"]:
        await opensearch.indices.create(index=name, body={"settings": {"number_of_replicas": 0}})
    try:
        code, out, _ = run({"PEREGRINE_INDEX_PREFIX": prefix}, "alerts", "retention", "--days", "30")
        assert code == 0, out
        assert out.startswith("deleted 120 index(es) older than 30 day(s)"), out
        left = await opensearch.indices.get(index=prefix + "*")
        assert sorted(left) == [prefix + "2099.01.01"]
    finally:
        await opensearch.indices.delete(index=prefix + "*", ignore_unavailable=True)


async def test_replay_batches_never_exceed_the_workers_message_limit_and_reports_what_it_cannot_send(stack, topic_factory, tmp_path):
    """`--batch 1000` of 2 KB events made one 2.2 MB message, which the worker refuses whole
    (oversized); an event nested deeper than JSON is written here stopped the replay midway."""
    import orjson

    from pipeline_harness import read_topic

    topic = await topic_factory(1)
    events = [{"evt.type": "openat", "container.id": "c1", "evt.num": n, "fd.name": "/tmp/" + "x" * 2000} for n in range(60)]
    lines = [orjson.dumps(e) for e in events]
    deep = b'{"evt.type":"openat","container.id":"c1","x":' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}"
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines[:30] + [deep] + lines[30:]) + b"\n")
    code, out, _ = run({"PEREGRINE_KAFKA_BOOTSTRAP": stack.bootstrap_servers, "PEREGRINE_MAX_MESSAGE_BYTES": "20000"},
                       "replay", str(path), "--topic", topic, "--batch", "1000")
    assert code == 1, out
    assert "not sent: event 31: Recursion limit reached" in out and "replayed 60 events in 7 messages; 1 not sent" in out
    records = await read_topic(stack.bootstrap_servers, topic, expect=7)
    assert len(records) == 7 and all(len(r.value) <= 20_000 for r in records)
    assert [orjson.loads(line)["evt.num"] for r in records for line in r.value.split(b"\n")] == list(range(60))
