"""The atelier end to end: every attack's events (deploy/atelier/*/events.jsonl) through a
real `peregrine worker` running Peregrine's own rules, correlations and live Polaris audit
give, in OpenSearch, exactly the alerts deploy/atelier/catalog.yaml expects.

K8s audit events take the API server's path: EventLists posted to a real `peregrine
webhook` (bearer token), which produces them to the worker's topic. Syscall and
CloudTrail events are produced to their topics as a collector would."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.alerts.falco_json import event_time_ns
from pipeline.cli.replay import _source, load_events, moved_to_now, produce
from pipeline.fields.coerce import to_time_ns
from pipeline.sinks.opensearch import daily_index
from pipeline_harness import WorkerSetup, health, read_topic, search_all
from webhook_process import WebhookProcess, eventlist

ROOT = Path(__file__).resolve().parents[2]
ATELIER = ROOT / "deploy" / "atelier"
CATALOG = yaml.safe_load((ATELIER / "catalog.yaml").read_text())["entries"]
RULE_FILES = sorted(str(p) for p in (ROOT / "rules").glob("*.yaml"))  # rules and correlations, as `scan --rules rules/`


@pytest.fixture
def setup(worker_setup):
    return functools.partial(worker_setup, label="pg-atelier", index_label="atelier")


async def assigned(setup: WorkerSetup, timeout: float = 120.0) -> None:
    proc = setup.workers[-1]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode}:\n{setup.log_text()}")
        state = health(proc)
        if state and state.get("assignment"):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker got no partitions within {timeout:.0f}s:\n{setup.log_text()}")


def entry_windows() -> dict[str, tuple[int, int]]:
    """Each entry's first and last event time (ns): the attacks are dated minutes apart."""
    windows = {}
    for name, entry in CATALOG.items():
        times = [event_time_ns(event, _source(event, hint)) for event, hint in load_events([str(ATELIER / entry["events"])])]
        windows[name] = (min(times), max(times))
    spans = sorted(windows.values())
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), "atelier entries overlap in time"
    return windows


def entry_of(alert: dict, windows: dict[str, tuple[int, int]]) -> str:
    at = to_time_ns(alert["time"])
    found = [name for name, (first, last) in windows.items() if first <= at <= last]
    assert len(found) == 1, f"alert at {alert['time']} ({alert['rule']}) is in no single entry's time span"
    return found[0]


@pytest.fixture
async def webhook(tmp_path):
    started: list[WebhookProcess] = []

    async def make(bootstrap: str, topic: str) -> WebhookProcess:
        started.append(WebhookProcess(bootstrap, topic, tmp_path / "webhook", token="atelier-audit-token"))
        return await started[-1].start()

    yield make
    for process in started:
        process.stop()


async def send_attacks(s: WorkerSetup, receiver: WebhookProcess) -> None:
    """Every entry's events, in time order, as collectors send them: a correlation ignores
    events older than its watermark (the newest event time seen, less the allowed lateness)."""
    topics = {"syscall": s.topics["syscall"], "k8s_audit": s.topics["k8s_audit"], "aws_cloudtrail": s.topics["cloudtrail"]}
    windows = entry_windows()
    for name in sorted(CATALOG, key=lambda n: windows[n][0]):
        events = load_events([str(ATELIER / CATALOG[name]["events"])])
        audit = [event for event, hint in events if _source(event, hint) == "k8s_audit"]
        for start in range(0, len(audit), 20):  # the API server's webhook backend batches events
            status, body = await receiver.post(eventlist(audit[start:start + 20]), token="atelier-audit-token")
            assert status == 200, (status, body, receiver.log_text())
        await produce(s.bootstrap, [(e, h) for e, h in events if _source(e, h) != "k8s_audit"], topics, batch=20)


async def assert_every_entry_alerted(s: WorkerSetup, opensearch) -> None:
    windows = entry_windows()
    expected = {name: Counter(entry["expect"]) for name, entry in CATALOG.items()}
    total = sum(sum(c.values()) for c in expected.values())
    hits = await search_all(opensearch, s.index_prefix, expect=total, timeout=240)
    found: dict[str, Counter] = {name: Counter() for name in CATALOG}
    for hit in hits:
        found[entry_of(hit["_source"], windows)][hit["_source"]["rule"]] += 1
    assert found == expected, s.log_text()
    assert len({hit["_id"] for hit in hits}) == total
    assert await read_topic(s.bootstrap, s.topics["deadletter"], expect=0, timeout=10, settle=2) == []


WORKER_ENV = {"PEREGRINE_RULES": os.pathsep.join(RULE_FILES), "PEREGRINE_RULE_MATCHING": "all", "PEREGRINE_CONFIG_AUDIT": "true"}


async def test_every_atelier_attack_gives_exactly_its_alerts_in_opensearch(setup, webhook, opensearch):
    s = await setup(2, **WORKER_ENV)
    s.start()
    receiver = await webhook(s.bootstrap, s.topics["k8s_audit"])
    await assigned(s)
    await send_attacks(s, receiver)
    await assert_every_entry_alerted(s, opensearch)


async def test_a_worker_started_after_every_attack_was_sent_gives_the_same_alerts(setup, webhook, opensearch):
    """The worker starts behind, every attack on its topics already: its first batches read
    partitions and groups in another order than the attacks' times. Under load its regroup
    clocks moved past the forbidden-exec burst before reading it (late 27 in /health), and
    its threshold alert was lost (tests/unit/test_regroup_backlog.py)."""
    s = await setup(2, **WORKER_ENV)
    receiver = await webhook(s.bootstrap, s.topics["k8s_audit"])
    await send_attacks(s, receiver)
    s.start()
    await assigned(s)
    await assert_every_entry_alerted(s, opensearch)


async def test_the_demo_attack_gives_the_demo_alerts_in_opensearch(setup, opensearch):
    """`peregrine demo`'s events through a worker configured as the demo configures it:
    default rules (PEREGRINE_RULES empty), default rule matching, the live audit on, and the
    recorded attack moved to end now: its alerts are today's, in today's index."""
    demo = yaml.safe_load((ATELIER / "catalog.yaml").read_text())["demo"]
    s = await setup(1, PEREGRINE_RULES="")
    s.start()
    await assigned(s)
    began = time.time_ns()
    events = moved_to_now(load_events([str(ATELIER / demo["events"])]))
    topics = {"syscall": s.topics["syscall"], "k8s_audit": s.topics["k8s_audit"], "aws_cloudtrail": s.topics["cloudtrail"]}
    await produce(s.bootstrap, events, topics, batch=50)
    expected = Counter(demo["expect"])
    hits = await search_all(opensearch, s.index_prefix, expect=sum(expected.values()), timeout=240)
    assert Counter(hit["_source"]["rule"] for hit in hits) == expected, s.log_text()
    chain = [hit["_source"] for hit in hits if hit["_source"]["rule"] == "Log4Shell exploitation chain"]
    assert chain[0]["output_fields"]["corr.group"] == {"container.id": "7d3f9a2b1c4e"}
    recorded = [event_time_ns(event, _source(event, hint)) for event, hint in load_events([str(ATELIER / demo["events"])])]
    span = max(recorded) - min(recorded)
    for hit in hits:
        at = to_time_ns(hit["_source"]["time"])
        assert began - span - 1_000_000_000 < at <= time.time_ns(), hit["_source"]  # the recording ends now
        assert hit["_index"] == daily_index(s.index_prefix, at)
    # the demo run again, after the first (as `peregrine demo` places it): the same attack
    # later is as many alerts again, the Log4Shell chain too (its events' evt.num repeat),
    # but the live audit's (it reports an unchanged object's failures once, docs/audit.md)
    newest = max(to_time_ns(hit["_source"]["time"]) for hit in hits)
    await produce(s.bootstrap, moved_to_now(load_events([str(ATELIER / demo["events"])]), after_ns=newest), topics, batch=50)
    twice = Counter({rule: count * (1 if rule.startswith("Polaris ") else 2) for rule, count in expected.items()})
    hits = await search_all(opensearch, s.index_prefix, expect=sum(twice.values()), timeout=240)
    assert Counter(hit["_source"]["rule"] for hit in hits) == twice, s.log_text()
    assert len({hit["_id"] for hit in hits}) == sum(twice.values())
