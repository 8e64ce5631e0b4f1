"""The process-tree table is bounded on the real stack: past PEREGRINE_MAX_CONTAINERS the
least recently seen container's tree is deleted (a tombstone in the table's changelog),
and a restarted worker tracks the containers it recovered from the changelog, so they are
evicted too."""

from __future__ import annotations

import asyncio
import signal
import urllib.request

import orjson

from pipeline_harness import produce, read_topic
from test_pipeline_e2e import setup, shell  # noqa: F401 - the fixture

T0 = 1_700_000_000_000_000_000
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def metric(proc, name: str) -> float | None:
    try:
        with OPENER.open(f"http://127.0.0.1:{proc.web_port}/metrics", timeout=3) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return None
    return None


async def wait_metric(proc, name: str, value: float, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = None
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode}")
        seen = metric(proc, name)
        if seen == value:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} never reached {value} within {timeout:.0f}s; last {seen}")


async def tombstones(s, expect: int) -> list[bytes]:
    changelog = f"{s.app_id}-process-tree-changelog"
    records = await read_topic(s.bootstrap, changelog, expect=expect, timeout=60, setup=s)
    return [r.key for r in records if r.value is None]


async def test_past_max_containers_the_least_recently_seen_tree_is_deleted_also_after_a_restart(setup):
    s = await setup(partitions=1, PEREGRINE_MAX_CONTAINERS="2", PEREGRINE_CONFIG_AUDIT="false")
    worker = s.start(instance_id="bounds-1")  # static membership: the restart takes the partition back at once
    alerts = 0

    async def send(*containers: str, timeout: float = 60.0) -> None:
        nonlocal alerts
        for n, cid in enumerate(containers):
            await produce(s.bootstrap, s.topics["syscall"], [(cid.encode(), orjson.dumps(shell(cid, 100 + alerts + n, T0 + alerts + n)))])
        alerts += len(containers)
        assert len(await read_topic(s.bootstrap, s.topics["alerts"], expect=alerts, settle=0, timeout=timeout, setup=s)) >= alerts

    await send("c1", "c2")
    await send("c1")  # c1 seen again: c2 is now the least recently seen
    await send("c3")
    await wait_metric(worker, "peregrine_containers_evicted_total", 1)
    assert await wait_for_tombstones(s, [b"c2"])
    assert metric(worker, "peregrine_tracked_containers") == 2

    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    worker = s.restart(worker)  # same app id and instance id; the memory store comes back from the changelog
    await send("c4", timeout=180)  # the recovered c1 and c3 are tracked: one of them must go
    await wait_metric(worker, "peregrine_containers_evicted_total", 1)
    gone = await wait_for_tombstones(s, [b"c2", None])
    assert len(gone) == 2 and gone[1] in (b"c1", b"c3")
    assert metric(worker, "peregrine_tracked_containers") == 2


async def wait_for_tombstones(s, expected: list[bytes | None], timeout: float = 60.0) -> list[bytes]:
    """The changelog's tombstone keys once there are len(expected) of them; None in
    ``expected`` matches any key."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: list[bytes] = []
    while loop.time() < deadline:
        found = await tombstones(s, 1)
        if len(found) >= len(expected):
            break
        await asyncio.sleep(1)
    assert len(found) == len(expected), found
    assert all(e is None or e == f for e, f in zip(expected, found)), found
    return found
