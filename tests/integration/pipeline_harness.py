"""Helpers for the pipeline tests: a real `peregrine worker` subprocess with its own
topics, app id, index prefix and web port, plus Kafka/OpenSearch readers.

The worker runs with the real field registries (pipeline.fields) and, unless a
test says otherwise, the small rules of tests/data/pipeline/rules.yaml (Falco's
own field names)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "tests" / "data" / "pipeline" / "rules.yaml"
PEREGRINE = str(Path(sys.executable).with_name("peregrine"))
# the workers' log level: info, so that a test failing in CI shows the worker's rebalances, changelog
# recovery and stream state in its log tail (at warning a worker that stalled after its assignment
# left only Faust's banner); PEREGRINE_TEST_WORKER_LOGLEVEL=warning (or debug) to change it
WORKER_LOGLEVEL = os.environ.get("PEREGRINE_TEST_WORKER_LOGLEVEL", "info")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WorkerSetup:
    bootstrap: str
    opensearch_url: str
    topics: dict[str, str]  # syscall, k8s_audit, cloudtrail, alerts, deadletter
    index_prefix: str
    data_dir: Path
    partitions: int = 1
    app_id: str = field(default_factory=lambda: f"pg-test-{uuid.uuid4().hex[:8]}")
    store: str = "memory"
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def env(self, web_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PEREGRINE_APP_ID": self.app_id,
            "PEREGRINE_KAFKA_BOOTSTRAP": self.bootstrap,
            "PEREGRINE_OPENSEARCH_URL": self.opensearch_url,
            "PEREGRINE_SYSCALL_TOPIC": self.topics["syscall"],
            "PEREGRINE_K8S_AUDIT_TOPIC": self.topics["k8s_audit"],
            "PEREGRINE_CLOUDTRAIL_TOPIC": self.topics["cloudtrail"],
            "PEREGRINE_ALERTS_TOPIC": self.topics["alerts"],
            "PEREGRINE_DEADLETTER_TOPIC": self.topics["deadletter"],
            "PEREGRINE_INDEX_PREFIX": self.index_prefix,
            "PEREGRINE_PARTITIONS": str(self.partitions),
            "PEREGRINE_STORE": self.store,
            "PEREGRINE_DATA_DIR": str(self.data_dir),
            "PEREGRINE_WEB_PORT": str(web_port),
            "PEREGRINE_RULES": str(RULES),
            "PEREGRINE_BATCH_WITHIN_S": "0.1",
            "PEREGRINE_OPENSEARCH_RETRY_MAX_S": "2",
        })
        env.update(self.extra)
        return env

    def start(self, *, instance_id: str | None = None, web_port: int | None = None, **extra: str) -> subprocess.Popen:
        """A worker. ``instance_id``: Kafka static membership (PEREGRINE_INSTANCE_ID), so that
        :meth:`restart` takes its partitions back at once; without it the group waits for the
        killed member's session timeout (60 s) before it assigns them again."""
        log = self.data_dir / f"worker-{len(self.logs)}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        port = web_port or free_port()
        env = self.env(port)
        if instance_id is not None:
            env["PEREGRINE_INSTANCE_ID"] = instance_id
        env.update(extra)
        proc = subprocess.Popen([PEREGRINE, "worker", "-l", WORKER_LOGLEVEL], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
        proc.web_port = port  # type: ignore[attr-defined]
        proc.instance_id = instance_id  # type: ignore[attr-defined]
        proc.extra = dict(extra)  # type: ignore[attr-defined]
        self.workers.append(proc)
        self.logs.append(log)
        return proc

    def restart(self, proc: subprocess.Popen) -> subprocess.Popen:
        """A new worker in place of ``proc`` (which has exited, e.g. killed): the same settings,
        instance id and web port (Faust's assignor checks a static member's URL)."""
        if proc.poll() is None:
            raise AssertionError("restart() is for a worker that has exited")
        return self.start(instance_id=proc.instance_id, web_port=proc.web_port, **proc.extra)  # type: ignore[attr-defined]

    def log_text(self) -> str:
        return "\n".join(f"--- {p}\n" + p.read_text(errors="replace")[-4000:] for p in self.logs if p.exists())

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], compression: str | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024, compression_type=compression)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def ndjson(events: list[dict]) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events)


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 60.0, settle: float = 1.0, setup: "WorkerSetup | None" = None) -> list:
    """Every record of the topic from the start, waiting until ``expect`` arrived
    (then ``settle`` more seconds, to catch extras)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settled_at = None
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for items in batch.values():
                records.extend(items)
            if setup is not None and setup.workers and all(p.poll() is not None for p in setup.workers):
                raise AssertionError("every worker exited:\n" + setup.log_text())
            if len(records) >= expect:
                settled_at = settled_at or loop.time() + settle
                if loop.time() >= settled_at:
                    break
    finally:
        await consumer.stop()
    return records


async def search_all(opensearch, prefix: str, expect: int, timeout: float = 60.0) -> list[dict]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    hits: list[dict] = []
    while loop.time() < deadline:
        try:
            await opensearch.indices.refresh(index=f"{prefix}*")
            result = await opensearch.search(index=f"{prefix}*", body={"query": {"match_all": {}}, "size": 10000})
            hits = result["hits"]["hits"]
        except Exception:  # noqa: BLE001 - index not created yet
            hits = []
        if len(hits) >= expect:
            await asyncio.sleep(1.0)
            await opensearch.indices.refresh(index=f"{prefix}*")
            result = await opensearch.search(index=f"{prefix}*", body={"query": {"match_all": {}}, "size": 10000})
            return result["hits"]["hits"]
        await asyncio.sleep(0.5)
    return hits


def health(proc: subprocess.Popen) -> dict | None:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{proc.web_port}/health", timeout=3) as response:  # type: ignore[attr-defined]
            return orjson.loads(response.read())
    except OSError:
        return None


async def wait_for_health(proc: subprocess.Popen, check, timeout: float = 120.0) -> dict:
    """Poll the worker's /health until ``check(state)`` holds; fail if it exits or the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = None
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode}")
        state = health(proc)
        if state is not None and check(state):
            return state
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker's health never matched within {timeout:.0f}s; last: {state}")


class TcpProxy:
    """127.0.0.1:<port> -> target, which the test can stop and start: OpenSearch
    unavailable to the worker without stopping the OpenSearch other tests share."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()
            await self.server.wait_closed()
            self.server = None


async def delete_alert_indices(opensearch, prefix: str) -> None:
    """A test's alert indices, and the template its worker installed for their prefix."""
    from pipeline.sinks.opensearch import template_name_for_prefix

    await opensearch.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    await opensearch.indices.delete_index_template(name=template_name_for_prefix(prefix), ignore=404)
