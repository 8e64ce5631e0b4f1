"""Benchmark of the streaming pipeline (prints figures, asserts nothing).

    .venv/bin/python bench/pipeline.py [--events 200000] [--batch 100]

Needs the local stack (`peregrine stack up`). Uses its own topics, app id and
index prefix, deleted at the end. Rules and fields: PEREGRINE_RULES /
PEREGRINE_REGISTRY as for the worker (default: the test rules and the flat
test registry, tests/integration/flat_fields.py).

Figures: sustained events/s of one worker end to end with batched messages and
with one event per message; a raw aiokafka consume + orjson.loads loop on the
same topic; the batch processor alone (decode + process tree + rules) on the
same bytes in this process; their ratios; latency p50/p99 from production to
the alert topic and to searchable in OpenSearch at about half the max rate;
the worker's peak RSS; RSS per tracked container at 10K and 100K containers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]
os.environ.setdefault("PEREGRINE_RULES", str(ROOT / "tests/data/pipeline/rules.yaml"))
os.environ.setdefault("PEREGRINE_REGISTRY", "flat_fields:registry_for")

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from pipeline.stack.provision import delete_topics, ensure_topics  # noqa: E402
from pipeline.stack.settings import StackSettings, TopicSpec  # noqa: E402
from pipeline.state.process_tree import ProcessTree  # noqa: E402
from pipeline.stream.batch import Message, kafka_partition  # noqa: E402
from pipeline.stream.delivery import build_processor  # noqa: E402
from pipeline.stream.settings import PipelineSettings  # noqa: E402

CONTAINERS = 200
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def events(n: int, start_ns: int) -> list[dict]:
    out = []
    for i in range(n):
        cid = f"bench{i % CONTAINERS:04d}"
        if i % 1000 == 0:  # one alert per 1000 events
            name, etype = "bash", "execve"
        else:
            name, etype = "nginx", ("read" if i % 3 else "execve")
        out.append({"evt.num": i, "evt.time": start_ns + i, "evt.type": etype, "evt.dir": "<", "proc.pid": 1000 + i % 50,
                    "proc.ppid": 1, "proc.name": name, "proc.cmdline": f"{name} -x", "container.id": cid,
                    "fd.name": "/var/www/index.html"})
    return out


def messages(evts: list[dict], batch: int) -> list[tuple[bytes, bytes]]:
    groups: dict[str, list[bytes]] = {}
    out = []
    for e in evts:
        g = groups.setdefault(e["container.id"], [])
        g.append(orjson.dumps(e))
        if len(g) >= batch:
            out.append((e["container.id"].encode(), b"\n".join(g)))
            groups[e["container.id"]] = []
    out += [(k.encode(), b"\n".join(v)) for k, v in groups.items() if v]
    return out


async def produce(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in msgs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, total_events: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    seen = 0
    began = time.perf_counter()
    try:
        while seen < total_events:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    v = r.value
                    seen += v.count(b"\n") + 1 if v[:1] == b"{" and b"\n" in v else len([orjson.loads(v)])
                    if b"\n" in v:
                        for line in v.split(b"\n"):
                            orjson.loads(line)
    finally:
        await consumer.stop()
    return total_events / (time.perf_counter() - began)


def engine_alone(msgs: list[tuple[bytes, bytes]], total_events: int, partitions: int) -> float:
    settings = PipelineSettings.from_env(partitions=partitions)
    processor = build_processor(settings)

    class Store(dict):
        def load(self, c, r):
            return self.get(c)

        def save(self, c, r, d):
            self[c] = d

    store = Store()
    batch = [Message(settings.syscall_topic, kafka_partition(k, partitions), i, k, v) for i, (k, v) in enumerate(msgs)]
    began = time.perf_counter()
    for start in range(0, len(batch), 1000):
        processor.process(batch[start:start + 1000], store)
    return total_events / (time.perf_counter() - began)


def metric(port: int, name: str) -> float:
    try:
        with OPENER.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        pass
    return -1.0


def start_worker(env: dict, port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("peregrine")), "worker", "-l", "warn"],
                            env=dict(env, PEREGRINE_WEB_PORT=str(port)), stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def run_worker(env: dict, total_events: int, log: Path) -> tuple[float, int]:
    from pipeline_harness import free_port

    port = free_port()
    worker = start_worker(env, port, log)
    peak = 0
    try:
        proc = psutil.Process(worker.pid)
        began = None
        while True:
            done = metric(port, "peregrine_events_total")
            peak = max(peak, proc.memory_info().rss)
            if done > 0 and began is None:
                began = time.perf_counter()
                first = done
            if done >= total_events:
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker exited; see {log}")
            await asyncio.sleep(0.05)
        rate = (total_events - first) / (time.perf_counter() - began) if began else 0.0
        return rate, peak
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def latency(env: dict, bootstrap: str, topics: dict, prefix: str, rate: float, seconds: float, log: Path) -> dict:
    from opensearchpy import AsyncOpenSearch

    from pipeline_harness import free_port

    port = free_port()
    worker = start_worker(env, port, log)
    while metric(port, "peregrine_events_total") < 0:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    consumer = AIOKafkaConsumer(topics["alerts"], bootstrap_servers=bootstrap, auto_offset_reset="latest", group_id=None)
    await consumer.start()
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=1)
    await producer.start()
    to_topic: list[float] = []
    to_search: list[float] = []
    sent_alerts: dict[str, int] = {}

    async def consume():
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time_ns()
                for r in records:
                    alert = orjson.loads(r.value)
                    to_topic.append((now - alert["output_fields"]["evt.time"]) / 1e6)
                    sent_alerts[alert["uuid"]] = alert["output_fields"]["evt.time"]

    reader = asyncio.create_task(consume())
    batch = 50
    interval = batch / rate
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.time_ns()
        evts = events(batch, now)
        for i, e in enumerate(evts):
            e["evt.num"] = n + i
            if (n + i) % 100 == 0:
                e.update({"evt.type": "execve", "proc.name": "bash"})
        for k, v in messages(evts, batch):
            await producer.send(topics["syscall"], value=v, key=k)
        n += batch
        await asyncio.sleep(interval)
    await producer.flush()
    await asyncio.sleep(3)
    reader.cancel()
    client = AsyncOpenSearch(hosts=[os.environ.get("PEREGRINE_OPENSEARCH_URL", StackSettings.from_env().opensearch_url)])
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while len(seen) < len(sent_alerts) and time.monotonic() < deadline:
        result = await client.search(index=f"{prefix}*", body={"size": 10000, "_source": ["uuid"], "query": {"match_all": {}}},
                                     ignore_unavailable=True)
        now = time.time_ns()
        for hit in result["hits"]["hits"]:
            if hit["_id"] not in seen and hit["_id"] in sent_alerts:
                seen.add(hit["_id"])
                to_search.append((now - sent_alerts[hit["_id"]]) / 1e6)
        await asyncio.sleep(0.1)
    await client.close()
    await producer.stop()
    await consumer.stop()
    worker.terminate()
    worker.wait(timeout=30)

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")

    return {"events": n, "alerts": len(to_topic), "topic_p50": pct(to_topic, 0.5), "topic_p99": pct(to_topic, 0.99),
            "search_p50": pct(to_search, 0.5), "search_p99": pct(to_search, 0.99), "searched": len(to_search)}


def rss_per_container(count: int) -> float:
    gc.collect()
    before = psutil.Process().memory_info().rss
    store: dict[bytes, bytes] = {}
    for c in range(count):
        tree = ProcessTree()
        for p in range(8):
            tree.update({"evt.type": "execve", "evt.time": p, "proc.pid": 100 + p, "proc.ppid": 99 + p, "proc.name": f"proc{p}",
                         "proc.exepath": f"/usr/bin/proc{p}", "proc.cmdline": f"proc{p} --flag value{c}"})
        store[f"container-{c:06d}".encode()] = tree.to_bytes()
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / count


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--single", type=int, default=20_000, help="events for the one-event-per-message run")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--latency-seconds", type=float, default=15)
    args = parser.parse_args()
    stack = StackSettings.from_env()
    bootstrap = stack.kafka_bootstrap
    tag = uuid.uuid4().hex[:8]
    names = {k: f"bench.{k}.{tag}" for k in ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter", "single")}
    await ensure_topics(bootstrap, [TopicSpec(n, args.partitions) for n in names.values()])
    prefix = f"peregrine-alerts-bench-{tag}-"
    log = Path(f"/tmp/peregrine-bench-{tag}.log")
    base_env = dict(os.environ, PEREGRINE_SYSCALL_TOPIC=names["syscall"], PEREGRINE_K8S_AUDIT_TOPIC=names["k8s_audit"],
                    PEREGRINE_CLOUDTRAIL_TOPIC=names["cloudtrail"], PEREGRINE_ALERTS_TOPIC=names["alerts"],
                    PEREGRINE_DEADLETTER_TOPIC=names["deadletter"], PEREGRINE_INDEX_PREFIX=prefix, PEREGRINE_STORE="memory",
                    PEREGRINE_PARTITIONS=str(args.partitions), PEREGRINE_DATA_DIR=f"/tmp/peregrine-bench-{tag}",
                    PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "integration"), str(ROOT)]))
    try:
        evts = events(args.events, 1_763_800_000_000_000_000)
        batched = messages(evts, args.batch)
        await produce(bootstrap, names["syscall"], batched)
        print(f"{args.events} events in {len(batched)} messages of up to {args.batch} events, {args.partitions} partition(s)")
        raw = await raw_consume(bootstrap, names["syscall"], args.events)
        print(f"raw aiokafka consume + orjson.loads:        {raw:>10,.0f} events/s")
        alone = engine_alone(batched, args.events, args.partitions)
        print(f"engine alone (decode+tree+rules, 1 process): {alone:>10,.0f} events/s")
        piped, peak = await run_worker(dict(base_env, PEREGRINE_APP_ID=f"bench-b-{tag}"), args.events, log)
        print(f"worker end to end, batched messages:        {piped:>10,.0f} events/s  (peak RSS {peak / 2**20:.0f} MiB)")
        print(f"  ratio to engine alone: {piped / alone:.2f}x; to raw consume: {piped / raw:.2f}x")
        singles = messages(events(args.single, 1_763_900_000_000_000_000), 1)
        await produce(bootstrap, names["single"], singles)
        one, peak1 = await run_worker(dict(base_env, PEREGRINE_APP_ID=f"bench-s-{tag}", PEREGRINE_SYSCALL_TOPIC=names["single"]), args.single, log)
        print(f"worker end to end, one event per message:   {one:>10,.0f} events/s  (peak RSS {peak1 / 2**20:.0f} MiB)")
        rate = piped / 2
        lat = await latency(dict(base_env, PEREGRINE_APP_ID=f"bench-l-{tag}"), bootstrap, names, prefix, rate, args.latency_seconds, log)
        print(f"latency at ~{rate:,.0f} events/s ({lat['events']} events, {lat['alerts']} alerts): "
              f"to alert topic p50 {lat['topic_p50']:.0f} ms p99 {lat['topic_p99']:.0f} ms; "
              f"to searchable p50 {lat['search_p50']:.0f} ms p99 {lat['search_p99']:.0f} ms ({lat['searched']} seen)")
    finally:
        await delete_topics(bootstrap, [n for n in names.values()] + [f"{names['syscall']}.by-container.bench-{x}-{tag}" for x in "bsl"])
    for count in (10_000, 100_000):
        print(f"process-tree state, {count:>7,} containers x 8 processes: {rss_per_container(count):,.0f} bytes RSS per container")


if __name__ == "__main__":
    asyncio.run(main())
