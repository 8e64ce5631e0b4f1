"""Benchmark of the audit webhook receiver (prints figures, asserts nothing).

    .venv/bin/python bench/webhook.py [--posts 50] [--events 400] [--concurrency 1 4]

Needs the local stack (`peregrine stack up`). Starts `peregrine webhook` as a
subprocess on its own 4-partition topic (deleted at the end) and posts
EventLists of ``--events`` events (the API server's default
--audit-webhook-batch-max-size is 400), built from tests/data's audit events
(pods at RequestResponse, RBAC, exec, ConfigMaps). Figures: events/s and
ms per post, acked by Kafka (acks=all), for each number of concurrent posts.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.stack.provision import delete_topics, ensure_topics  # noqa: E402
from pipeline.stack.settings import StackSettings, TopicSpec  # noqa: E402


def audit_events() -> list[dict]:
    data = ROOT / "tests" / "data"
    events = orjson.loads((data / "events" / "k8s_audit_eventlist.json").read_bytes())["items"]
    events += [orjson.loads(p.read_bytes()) for p in sorted((data / "k8s_audit").glob("*.json"))]
    return [{k: v for k, v in e.items() if k not in ("kind", "apiVersion")} for e in events]


def body(events: list[dict], count: int, tag: str) -> bytes:
    items = []
    for n in range(count):
        item = copy.deepcopy(events[n % len(events)])
        item["auditID"] = f"{tag}-{n}"
        items.append(item)
    return orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})


async def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"peregrine webhook exited {proc.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit("peregrine webhook did not become healthy")


async def main(args: argparse.Namespace) -> None:
    stack = StackSettings.from_env()
    topic = f"pg-bench.webhook.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, 4)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PEREGRINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "PEREGRINE_K8S_AUDIT_TOPIC": topic,
           "PEREGRINE_WEBHOOK_TOKEN": "bench"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("peregrine")), "webhook", "--listen", f"127.0.0.1:{port}",
                             "--loglevel", "warning"], env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        events = audit_events()
        url = f"http://127.0.0.1:{port}/k8s-audit"
        async with aiohttp.ClientSession() as session:
            for concurrency in args.concurrency:
                bodies = [body(events, args.events, f"c{concurrency}-{i}") for i in range(args.posts)]
                gate = asyncio.Semaphore(concurrency)

                async def post(data: bytes) -> None:
                    async with gate, session.post(url, data=data, headers={"Authorization": "Bearer bench"}) as response:
                        if response.status != 200:
                            raise SystemExit(f"HTTP {response.status}: {await response.text()}")

                started = time.perf_counter()
                await asyncio.gather(*(post(b) for b in bodies))
                seconds = time.perf_counter() - started
                total = args.posts * args.events
                print(f"concurrency {concurrency}: {args.posts} posts x {args.events} events ({len(bodies[0]) / 1024:.0f} KiB each) "
                      f"in {seconds:.2f}s: {total / seconds:,.0f} events/s, {seconds / args.posts * 1000:.0f} ms per post")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        await delete_topics(stack.kafka_bootstrap, [topic])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    asyncio.run(main(parser.parse_args()))
