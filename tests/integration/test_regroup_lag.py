"""A regrouped correlation loses no match when one input partition lags behind another.

A real `peregrine worker` (its default rules) over two partitions of the K8s audit topic:
"Repeated forbidden kubectl exec" counts by ka.user.name, so its events go through the
worker's regroup topic, whose partition merges both input partitions. Both partitions
forward events; then partition 0 moves 6 minutes ahead, and only after that has been
correlated does partition 1 (lagging, as a backlog or a replayed partition would) send a
user's 20 denied execs. Each step waits until the worker has committed what it was sent
(the audit partitions', then the regroup partition's offsets), so the regroup partition
reads the lagging events in a later batch than the newer ones. Before the regroup clock
kept its origins apart, those 20 were late on the newest time of the other partition and
the alert was lost.
"""

from __future__ import annotations

import functools
import json

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from pipeline.stream.batch import kafka_partition
from pipeline_harness import WorkerSetup, produce, read_topic, search_all, wait_for_health
from test_correlation_worker import wait_committed

EXEC = "Repeated forbidden kubectl exec"


@pytest.fixture
def make_setup(worker_setup):
    # PEREGRINE_RULES empty: the worker's defaults, correlations included
    return functools.partial(worker_setup, label="pg-lag", PEREGRINE_RULES="")


def forbidden_exec(n: int, user: str, namespace: str, at: str) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"lag-{n}", "stage": "ResponseComplete", "verb": "create",
            "user": {"username": user}, "objectRef": {"resource": "pods", "namespace": namespace, "name": f"web-{n}", "subresource": "exec"},
            "responseStatus": {"code": 403}, "stageTimestamp": f"2026-11-30T{at}Z"}


async def end_offset(bootstrap: str, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


class TwoPartitions:
    """A worker over two audit partitions, the namespace keyed to each, mallory's regroup
    partition (so her clock) and another user on the same clock: a threshold's window ends at
    its group's newest event, so the newer events are that user's."""

    def __init__(self, s: WorkerSetup) -> None:
        self.s = s
        names = [f"ns-{i}" for i in range(50)]
        self.namespace = {p: next(n for n in names if kafka_partition(n.encode(), 2) == p) for p in (0, 1)}
        self.group = kafka_partition(f'{EXEC}\x1f["mallory"]'.encode(), 2)
        self.other = next(u for u in (f"user-{i}" for i in range(100)) if kafka_partition(f'{EXEC}\x1f["{u}"]'.encode(), 2) == self.group)
        self.regroup_topic = f"{s.topics['syscall']}.by-group.{s.app_id}"
        self.sent = {0: 0, 1: 0}
        self.numbers = iter(range(1000))
        self.worker = None

    async def start(self) -> None:
        s = self.s
        self.worker = s.start()
        await wait_for_health(self.worker, lambda h: len([tp for tp in h["assignment"] if tp.startswith(s.topics["k8s_audit"] + ":")]) == 2)

    def execs(self, partition: int, user: str, times: list[str]) -> list[dict]:
        return [forbidden_exec(next(self.numbers), user, self.namespace[partition], at) for at in times]

    async def step(self, partition: int, events: list[dict]) -> None:
        """``events`` on ``partition``, correlated: its offsets committed (its forwards and
        progress records produced), then those of mallory's regroup partition."""
        s = self.s
        await produce(s.bootstrap, s.topics["k8s_audit"], [(self.namespace[partition].encode(), json.dumps(e).encode()) for e in events])
        self.sent[partition] += len(events)
        await wait_committed(s.bootstrap, s.app_id, s.topics["k8s_audit"], self.sent[partition], partition=partition)
        produced = await end_offset(s.bootstrap, self.regroup_topic, self.group)
        await wait_committed(s.bootstrap, s.app_id, self.regroup_topic, produced, partition=self.group)

    async def stats(self) -> dict:
        return await wait_for_health(self.worker, lambda h: True)

    async def assert_mallorys_alert(self, opensearch) -> None:
        """One alert, mallory's 20 execs, on the alert topic and in OpenSearch; no dead letter."""
        s = self.s
        records = await read_topic(s.bootstrap, s.topics["alerts"], expect=1, timeout=60, settle=3, setup=s)
        alerts = [json.loads(r.value) for r in records]
        assert [a["rule"] for a in alerts] == [EXEC], s.log_text()
        assert alerts[0]["output_fields"]["ka.user.name"] == "mallory"
        assert len(alerts[0]["output_fields"]["corr.events"]) == 20
        hits = await search_all(opensearch, s.index_prefix, expect=1, timeout=120)
        assert [h["_id"] for h in hits] == [alerts[0]["uuid"]]
        final = await self.stats()
        assert final["dead_letters"] == {}, final


async def test_a_partition_lagging_behind_the_other_loses_no_regrouped_match(make_setup, opensearch):
    run = TwoPartitions(await make_setup(2))
    await run.start()
    for at in ("10:00:00", "10:08:00"):  # both partitions forward: the regroup clock knows them
        await run.step(0, run.execs(0, run.other, [at]))
        await run.step(1, run.execs(1, run.other, [at]))
    await run.step(0, run.execs(0, run.other, ["10:16:00"]))  # partition 0 moves ahead, 6 minutes past what follows
    # partition 1, lagging: 20 denied execs within a minute
    await run.step(1, run.execs(1, "mallory", [f"10:10:{n:02d}" for n in range(20)]))
    await run.assert_mallorys_alert(opensearch)
    assert (await run.stats())["correlation_stats"]["late"] == 0


def audit_get(n: int, user: str, namespace: str, at: str) -> dict:
    """A read of a pod: no correlation step matches it, so nothing is forwarded."""
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"lag-get-{n}", "stage": "ResponseComplete", "verb": "get",
            "user": {"username": user}, "objectRef": {"resource": "pods", "namespace": namespace, "name": f"web-{n}"},
            "responseStatus": {"code": 200}, "stageTimestamp": f"2026-11-30T{at}Z"}


async def test_a_lagging_partition_that_forwards_nothing_for_regroup_idle_loses_no_regrouped_match(make_setup, opensearch):
    """Sparse origins. Both partitions forward at 10:00; then partition 0 moves on to 10:24 with
    forwarded execs while partition 1 lags (10:03 to 10:09) with reads that match no step: it
    forwards nothing while the regroup clock moves more than regroup_idle (10m) on. Its
    progress records (each batch's newest event time, to every regroup partition) keep it heard
    from, and hold the watermark at its own time, so its 20 denied execs at 10:10, older than
    partition 0's watermark, still alert. Without them partition 1 was idle and forgotten, and
    the 20 were late."""
    run = TwoPartitions(await make_setup(2))
    await run.start()
    await run.step(0, run.execs(0, run.other, ["10:00:00"]))
    await run.step(1, run.execs(1, run.other, ["10:00:00"]))
    for leading, lagging in (("10:06:00", "10:03:00"), ("10:12:00", "10:06:00"), ("10:18:00", "10:09:00")):
        await run.step(0, run.execs(0, run.other, [leading]))
        await run.step(1, [audit_get(next(run.numbers), "reader", run.namespace[1], lagging)])  # nothing forwarded
    await run.step(0, run.execs(0, run.other, ["10:24:00"]))
    await run.step(1, run.execs(1, "mallory", [f"10:10:{n:02d}" for n in range(20)]))
    # everything was correlated (the regroup partition's offsets committed): the counts are final
    stats = (await run.stats())["correlation_stats"]
    assert stats["late"] == 0 and stats["idle_origins"] == 0 and stats["progress"] > 0, stats
    await run.assert_mallorys_alert(opensearch)
