"""`peregrine demo`: the main job end to end on the local stack.

Stack up (topics, alert template) -> a `peregrine worker` subprocess ->
the demo attack in deploy/atelier/demo/ replayed to the input topics -> the
alerts read back from OpenSearch and printed as a table. The worker is
stopped at the end unless --keep-worker. Each phase's time is printed.
The attack is moved to the present, its gaps kept (pipeline/ingest/retime.py):
its alerts are today's, where dashboards and `peregrine alerts report` look.
With --recorded-times it keeps the times it was recorded at; alert ids being
deterministic, running that again stores no duplicates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.errors import StackError

if TYPE_CHECKING:
    from rich.table import Table

DEMO_DIR = Path(__file__).resolve().parents[2] / "deploy" / "atelier" / "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(port: int) -> dict | None:
    import urllib.request

    import orjson

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return orjson.loads(response.read())
    except OSError:
        return None


def _stop_kept_worker(pidfile: Path, say) -> None:
    """Stop the worker an earlier ``--keep-worker`` left running. Still in the demo's consumer
    group, it took part of the partitions from the new worker, with its own (maybe older)
    code, and each start made the group rebalance around it: the new worker waited for
    partitions past its minute."""
    import psutil

    try:
        text = pidfile.read_text()
    except OSError:
        return
    pidfile.unlink(missing_ok=True)
    try:
        pid = int(text.strip())
    except ValueError:
        return
    try:
        process = psutil.Process(pid)
        if "agents.detect:app" not in " ".join(process.cmdline()):
            return  # the pid is another program's by now
        process.terminate()
        try:
            process.wait(timeout=30)
        except psutil.TimeoutExpired:
            process.kill()
    except psutil.Error:  # gone already, or not ours to stop
        return
    say(f"stopped the worker an earlier --keep-worker left running (pid {pid})")


async def _newest_alert_ns(settings) -> int | None:
    """The time of the newest stored alert up to an hour ahead (a previous demo run's may lie a
    few seconds ahead), None when there is none or OpenSearch does not answer."""
    from opensearchpy import AsyncOpenSearch

    from pipeline.fields.coerce import to_time_ns
    from pipeline.stream.credentials import opensearch_options

    client = AsyncOpenSearch(hosts=[settings.opensearch_url], timeout=10, **opensearch_options(settings))
    try:
        await client.indices.refresh(index=f"{settings.index_prefix}*", ignore_unavailable=True)
        result = await client.search(index=f"{settings.index_prefix}*", ignore_unavailable=True, body={
            "size": 1, "sort": [{"time": "desc"}], "_source": ["time"],
            "query": {"range": {"time": {"lte": "now+1h"}}},
        })
        hits = result["hits"]["hits"]
        newest = to_time_ns(hits[0]["_source"]["time"]) if hits else None
        return newest if newest.__class__ is int else None
    except Exception:  # noqa: BLE001 - no index yet: nothing to stay after
        return None
    finally:
        await client.close()


async def _alerts(settings, start_ns: int, end_ns: int) -> list[dict]:
    from opensearchpy import AsyncOpenSearch

    from pipeline.stream.credentials import opensearch_options

    url, prefix = settings.opensearch_url, settings.index_prefix
    client = AsyncOpenSearch(hosts=[url], timeout=10, **opensearch_options(settings))
    try:
        await client.indices.refresh(index=f"{prefix}*", ignore_unavailable=True)
        result = await client.search(index=f"{prefix}*", ignore_unavailable=True, body={
            "size": 500, "sort": [{"time": "asc"}],
            "query": {"range": {"time": {"gte": start_ns // 1_000_000, "lte": end_ns // 1_000_000 + 1, "format": "epoch_millis"}}},
        })
        return [hit["_source"] for hit in result["hits"]["hits"]]
    except Exception:  # noqa: BLE001 - not there yet
        return []
    finally:
        await client.close()


def demo(
    keep_worker: bool = typer.Option(False, "--keep-worker", help="Leave the worker running at the end"),
    timeout: float = typer.Option(90.0, "--timeout", help="Seconds to wait for the alerts"),
    recorded_times: bool = typer.Option(False, "--recorded-times", help="Replay the attack at the times it was "
                                        "recorded (default: moved to now, so its alerts are today's)"),
) -> None:
    """Run the whole pipeline on a demo attack and print the alerts from OpenSearch."""
    from rich.console import Console

    from pipeline.alerts.falco_json import event_time_ns
    from pipeline.cli.replay import _source, load_events, moved_to_now, produce
    from pipeline.stack.lifecycle import up
    from pipeline.stack.settings import StackSettings
    from pipeline.stream.settings import PipelineSettings

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    phases: list[tuple[str, float]] = []
    began = time.monotonic()

    def phase(name: str, since: float) -> float:
        now = time.monotonic()
        phases.append((name, now - since))
        console.print(f"[bold]{name}[/]: {now - since:.1f}s")
        return now

    mark = time.monotonic()
    asyncio.run(up(StackSettings.from_env(), say=lambda message: console.print(f"  {message}")))
    mark = phase("stack up", mark)

    port = _free_port()
    env = dict(os.environ, PEREGRINE_WEB_PORT=str(port))
    env.setdefault("PEREGRINE_APP_ID", "peregrine-demo")
    # Tables in memory, rebuilt from their changelogs at each start: a demo never
    # trips over local RocksDB files left from a Kafka whose data was since wiped.
    env.setdefault("PEREGRINE_STORE", "memory")
    settings = PipelineSettings.from_env(env)
    logs = settings.data_dir / "demo-worker.log"
    logs.parent.mkdir(parents=True, exist_ok=True)
    kept = settings.data_dir / "demo-worker.pid"
    _stop_kept_worker(kept, lambda message: console.print(f"  {message}"))
    worker = subprocess.Popen([str(Path(sys.executable).with_name("peregrine")), "worker", "-l", "warning"],
                              env=env, stdout=logs.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        state = _health(port)
        if state and state.get("assignment"):
            break
        if worker.poll() is not None:
            raise StackError(f"the worker exited with {worker.returncode}; its log: {logs}")
        if time.monotonic() > deadline:
            worker.terminate()
            raise StackError(f"the worker got no partitions within 60s; its log: {logs}")
        time.sleep(0.5)
    mark = phase(f"worker started (pid {worker.pid}, /health and /metrics on 127.0.0.1:{port})", mark)

    try:
        files = sorted(str(p) for p in DEMO_DIR.glob("*.jsonl"))
        events = load_events(files)
        if not recorded_times:  # after the newest alert: a run right after another would share its range
            events = moved_to_now(events, after_ns=asyncio.run(_newest_alert_ns(settings)))
        topics = {"syscall": settings.syscall_topic, "k8s_audit": settings.k8s_audit_topic, "aws_cloudtrail": settings.cloudtrail_topic}
        sent = asyncio.run(produce(settings.broker, events, topics, batch=50, settings=settings))
        times = [event_time_ns(event, _source(event, hint)) for event, hint in events]
        mark = phase(f"replayed {len(events)} events from {len(files)} file(s) in {sent} messages", mark)

        found: list[dict] = []
        stable_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = asyncio.run(_alerts(settings, min(times), max(times)))
            if len(now) != len(found):
                found, stable_since = now, time.monotonic()
            elif found and time.monotonic() - stable_since > 3:
                break
            time.sleep(0.5)
        mark = phase(f"{len(found)} alerts searchable in OpenSearch", mark)
    finally:
        if keep_worker:
            kept.write_text(f"{worker.pid}\n")  # the next demo stops it first
            console.print(f"worker left running: pid {worker.pid} (stop it with kill {worker.pid}; the next demo does)")
        else:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            console.print(f"worker stopped (pid {worker.pid})")

    console.print(alerts_table(found, settings.index_prefix))
    console.print("phases: " + ", ".join(f"{name.split(' (')[0]} {seconds:.1f}s" for name, seconds in phases)
                  + f"; total {time.monotonic() - began:.1f}s")
    if not found:
        raise typer.Exit(1)


def alerts_table(found: list[dict], index_prefix: str) -> Table:
    """The demo's alerts, one a row. Every column keeps a width of its own: with the long Polaris
    rule names unwrapped, a console of 160 columns had none left for the priority or the output;
    the narrowest widths add up to 80 columns."""
    from rich.table import Table

    table = Table(title=f"Alerts in OpenSearch ({index_prefix}*)")
    table.add_column("time (UTC)", no_wrap=True, min_width=14)
    table.add_column("priority", no_wrap=True, min_width=8)
    table.add_column("rule", overflow="fold", min_width=14, ratio=2)
    table.add_column("where", no_wrap=True, max_width=12, overflow="ellipsis")
    table.add_column("output", overflow="fold", min_width=14, ratio=3)
    for alert in found:
        fields = alert.get("output_fields") or {}
        where = fields.get("container.id") or fields.get("ka.target.namespace") or alert.get("source")
        table.add_row(alert["time"][5:19].replace("T", " "), alert["priority"], alert["rule"], str(where), alert["output"].split(": ", 1)[-1].split(" ", 1)[-1][:160])
    return table


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
