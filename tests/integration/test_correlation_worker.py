"""Correlation state in a changelog-backed Faust table survives kill -9.

A Faust worker (tests/integration/correlation_worker_app.py, the evaluator
with a table as its store) sees the first three steps of "Drop and
execute", is killed with SIGKILL, is started again, and the last step still
completes the sequence: one alert with all four contributing events.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "correlation_worker_app.py"
EVENTS = ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl"


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("a")
    return subprocess.Popen([sys.executable, str(APP), "worker", "-l", "warn"], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=str(ROOT))


async def _wait_for_lines(progress: Path, count: int, worker: subprocess.Popen, log: Path, timeout: float = 120.0) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        lines = progress.read_text().splitlines() if progress.exists() else []
        if len(lines) >= count:
            return lines
        if worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker processed {len(lines)} of {count} events:\n{log.read_text()[-3000:]}")


async def test_a_worker_killed_mid_sequence_resumes_and_fires(bootstrap_servers, topic_factory, tmp_path):
    events_topic = await topic_factory(1, prefix="corr-events")
    alerts_topic = await topic_factory(1, prefix="corr-alerts")
    progress = tmp_path / "progress"
    log = tmp_path / "worker.log"
    env = dict(os.environ)
    env.update({
        "CORR_BOOTSTRAP": bootstrap_servers,
        "CORR_IN_TOPIC": events_topic,
        "CORR_OUT_TOPIC": alerts_topic,
        "CORR_APP_ID": f"corr-test-{uuid.uuid4().hex[:8]}",
        "CORR_PROGRESS": str(progress),
    })
    stream = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    worker = _start(env, log)
    try:
        for event in stream[:6]:  # shell, download, other write, chmod 644, chmod +x: three steps done
            await producer.send_and_wait(events_topic, json.dumps(event).encode(), key=event["container.id"].encode())
        lines = await _wait_for_lines(progress, 6, worker, log)
        assert lines[-1].endswith("open=1")
        await asyncio.sleep(3)  # several commit intervals: offsets and the changelog are written
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert worker.returncode == -signal.SIGKILL

        worker = _start(env, log)
        for event in stream[6:]:  # ls, then the dropped file runs
            await producer.send_and_wait(events_topic, json.dumps(event).encode(), key=event["container.id"].encode())
        consumer = AIOKafkaConsumer(alerts_topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            alerts = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 120
            while not alerts and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                alerts.extend(json.loads(message.value) for messages in batch.values() for message in messages)
                if worker.poll() is not None:
                    raise AssertionError(f"restarted worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}")
            await _wait_for_lines(progress, 8, worker, log)
            await asyncio.sleep(1)
            alerts.extend(json.loads(m.value) for ms in (await consumer.getmany(timeout_ms=1000)).values() for m in ms)
        finally:
            await consumer.stop()
        assert len(alerts) == 1, log.read_text()[-3000:]
        # the restarted worker did not replay the first events: the partial match came from the changelog
        after_restart = progress.read_text().splitlines()[6:]
        assert [line.split()[0] for line in after_restart] == ["2006", "2007"], after_restart
        alert = alerts[0]
        assert alert["rule"] == "Drop and execute"
        assert alert["group"] == {"container.id": stream[0]["container.id"]}
        assert [e["id"] for e in alert["events"]] == [2000, 2002, 2005, 2007]
        assert [e["step"] for e in alert["events"]] == ["shell", "drop", "chmod", "exec"]
    finally:
        await producer.stop()
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
