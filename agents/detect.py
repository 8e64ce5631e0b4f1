"""The detection agents: batches of Kafka messages through BatchDelivery.

Two agents: syscall (its topic and the repartition topic, with the
process-tree table) and the other sources (K8s audit, CloudTrail, and the
regroup topic: pipeline/stream/regroup.py). Both
share one BatchDelivery, so one correlation evaluator whose state is the
correlation-state table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc

from agents.app import (alerts_topic, app, backlog, correlation_state, deadletter_topic, ocsf_topic, other_topics, process_tree,
                        regroup_topic, repartition_topic, settings, syscall_topics)
from pipeline.stream.delivery import BatchDelivery, build_processor

_delivery: BatchDelivery | None = None


def delivery() -> BatchDelivery:
    global _delivery
    if _delivery is None:
        _delivery = BatchDelivery(
            settings,
            build_processor(settings),
            alerts=alerts_topic,
            deadletters=deadletter_topic,
            repartition=repartition_topic,
            regroup=regroup_topic,
            ocsf=ocsf_topic,
            table=process_tree,
            correlation_table=correlation_state,
            topic_factory=lambda name: app.topic(name, key_serializer="raw", value_serializer="raw"),
            backlog=backlog,
            consumer=lambda: app.consumer,
        )
        _tune_gc()
    return _delivery


def _tune_gc() -> None:
    """Once everything long-lived exists (Faust, the compiled rules): move it out of the
    cyclic collector's sight, and collect young objects less often. A batch allocates
    hundreds of thousands of short-lived, acyclic event dicts that reference counting
    frees; with the default threshold (700) the collector ran every few events and
    re-scanned what survived."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def _drain(lane: str) -> None:
    """The agent stops: its last batch's delivery (run() returns before it ends) gets a
    chance to finish, so its offsets are committed rather than processed again."""
    if _delivery is not None:
        await _delivery.drain(lane, app.stop_wait_s)


async def _abandon_deliveries(messages) -> str | None:
    """The app's stop (``stop_wait_s``) or a revoke (``revoke_wait_s``) waited in vain for
    ``messages``: the deliveries holding them are cancelled, and the agents drop them (they
    stay unacked: pipeline/stream/bounded_stop.py). Returns what they were waiting on."""
    if _delivery is None:
        return None
    return await _delivery.abandon(messages)


app.abandon_deliveries = _abandon_deliveries


@app.agent(syscall_topics, name="detect-syscall")
async def detect_syscall(stream):
    try:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await delivery().run(batch, lane="syscall")
    finally:
        await _drain("syscall")


@app.agent(other_topics, name="detect-other")
async def detect_other(stream):
    try:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await delivery().run(batch, stateful=False, lane="other")
    finally:
        await _drain("other")


@app.page("/metrics")
async def metrics(web, request):
    from pipeline.metrics import exposition

    return web.bytes(exposition(), content_type="text/plain; version=0.0.4")


def _tp_name(tp) -> str:
    return f"{tp.topic}:{tp.partition}"


@app.page("/health")
async def health(web, request):
    state = delivery().health()
    state["assignment"] = sorted(map(_tp_name, app.consumer.assignment()))
    correlator = delivery().correlator
    if correlator is not None:
        # what the correlations did that no alert shows: events late (regrouped ones included:
        # pipeline/correlation/evaluate.py), origins of the regroup clocks idle or forgotten,
        # progress records taken (pipeline/stream/regroup.py)
        state["correlation_stats"] = dataclasses.asdict(correlator.stats)
    return web.json(state)


@app.page("/debug/consumer")
async def consumer_state(web, request):
    """Why a partition is (not) being read: Faust's flow and the partitions its fetcher asks
    aiokafka for, and aiokafka's own view of each assigned partition."""
    consumer = app.consumer
    state = {
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "in_recovery": app.in_recovery,
        "rebalancing": app.rebalancing,
        "active": sorted(map(_tp_name, consumer._active_partitions or ())),
        "paused": sorted(map(_tp_name, consumer._paused_partitions)),
        "buffered": sorted(map(_tp_name, consumer._buffered_partitions)),
        "read_offset": {_tp_name(tp): offset for tp, offset in consumer._read_offset.items()},
    }
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        assigned = assignment._tp_state if assignment is not None else {}
        state["aiokafka"] = {
            _tp_name(tp): {"paused": tp_state.paused, "awaiting_reset": tp_state.awaiting_reset,
                                           "position": tp_state.position if tp_state.has_valid_position else None}
            for tp, tp_state in assigned.items()}
    except Exception as error:  # noqa: BLE001 - a diagnostic page: say what failed
        state["aiokafka"] = f"{type(error).__name__}: {error}"
    state["tasks"] = sorted({task.get_coro().__qualname__ for task in asyncio.all_tasks()
                             if hasattr(task.get_coro(), "__qualname__")})
    return web.json(state)
