"""BatchDelivery.abandon: what a revoke (or a stop) gave up is neither delivered nor acked, the
agent carries on (its next batches are delivered), and a batch with messages that were not
given up is delivered as before."""

from __future__ import annotations

import asyncio

import orjson
from pathlib import Path

from pipeline.stream.delivery import BatchDelivery, build_processor
from pipeline.stream.settings import PipelineSettings

from delivery_fakes import FakeEvent, FakeTopic, SlowFirstBulk, shell_batch, count_processed

ROOT = Path(__file__).resolve().parents[2]


def make_delivery() -> tuple[BatchDelivery, FakeTopic, SlowFirstBulk, list[int]]:
    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1",
                                          "PEREGRINE_CONFIG_AUDIT": "false"})
    alerts = FakeTopic()
    delivery = BatchDelivery(settings, build_processor(settings), alerts=alerts, deadletters=FakeTopic(), repartition=FakeTopic())
    client = delivery.sink.client = SlowFirstBulk()  # OpenSearch away until client.gate is set
    processed = count_processed(delivery)
    return delivery, alerts, client, processed


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0.01)


def messages(*batches: list) -> list:
    return [event.message for batch in batches for event in batch]


async def test_a_revoke_gives_up_the_batch_in_flight_and_the_one_waiting_for_it_and_the_agent_carries_on():
    delivery, alerts, client, processed = make_delivery()
    topic = delivery.settings.syscall_topic
    acked: list[int] = []
    first = shell_batch(topic, range(0, 3), acked)
    await asyncio.wait_for(delivery.run(first, stateful=False), 5)  # delivering: its bulk waits for OpenSearch
    second = shell_batch(topic, range(3, 6), acked)
    agent = asyncio.create_task(delivery.run(second, stateful=False))  # processed, waits for the first's delivery
    await settle()
    assert not agent.done() and delivery.health()["waiting_on"] == "opensearch"

    assert await asyncio.wait_for(delivery.abandon(messages(first, second)), 5) == "opensearch"
    await asyncio.wait_for(agent, 5)  # returns: the first's cancellation is not the agent's
    assert acked == []  # neither batch acked: their offsets stay uncommitted
    assert [key for key, _ in alerts.sent] == [b"c0", b"c1", b"c2"]  # the second was never delivered
    assert delivery.health()["waiting_on"] is None

    # after the rebalance: an abandoned event still in the agent's take buffer is dropped unprocessed,
    # the new ones are processed, delivered and acked
    client.gate.set()
    stale = FakeEvent(first[0].message, acked)
    await asyncio.wait_for(delivery.run([stale] + shell_batch(topic, range(6, 8), acked), stateful=False), 5)
    assert await asyncio.wait_for(delivery.drain(), 5)
    assert acked == [6, 7]
    assert processed == list(range(8))
    assert [key for key, _ in alerts.sent][3:] == [b"c6", b"c7"]
    assert [body.count(b'"create"') for body in client.bodies] == [3, 2]  # the given-up alerts are not in the next bulk
    # nothing left to give up: a batch taken now is delivered as usual
    await asyncio.wait_for(delivery.run(shell_batch(topic, range(8, 9), acked), stateful=False), 5)
    assert await asyncio.wait_for(delivery.drain(), 5)
    assert acked == [6, 7, 8]


async def test_a_batch_taken_after_the_revoke_gave_it_up_is_dropped_whole():
    delivery, alerts, client, processed = make_delivery()
    acked: list[int] = []
    stale = shell_batch(delivery.settings.syscall_topic, range(0, 2), acked)
    await delivery.abandon(messages(stale))
    await asyncio.wait_for(delivery.run(stale, stateful=False), 5)
    assert processed == [] and alerts.sent == [] and await delivery.drain() and acked == []


async def test_a_batch_whose_messages_were_not_all_given_up_is_delivered():
    delivery, alerts, client, _ = make_delivery()
    topic = delivery.settings.syscall_topic
    acked_a: list[int] = []
    acked_b: list[int] = []
    acked_c: list[int] = []
    a = shell_batch(topic, range(0, 3), acked_a)
    b = shell_batch(topic, range(3, 6), acked_b)
    await delivery.run(a, stateful=False, lane="a")  # holds the sink, its bulk waits for OpenSearch
    await delivery.run(b, stateful=False, lane="b")  # waits for the sink
    await settle()
    await asyncio.wait_for(delivery.abandon(messages(a)), 5)  # a's partitions revoked, b's kept
    assert await asyncio.wait_for(delivery.drain("b"), 5)
    assert acked_b == [3, 4, 5] and acked_a == []  # b delivered (the next bulk passes), a given up

    c = shell_batch(topic, range(6, 9), acked_c)
    client.bodies.clear()  # the next bulk waits at the gate again
    await delivery.run(c, stateful=False, lane="c")
    await settle()
    await asyncio.wait_for(delivery.abandon(messages(c)[:1]), 5)  # one of its partitions revoked, not the others
    await settle()
    assert acked_c == []  # still waiting for OpenSearch
    client.gate.set()
    c2 = shell_batch(topic, range(9, 10), acked_c)
    await asyncio.wait_for(delivery.run(c2, stateful=False, lane="c"), 5)  # the lane's next batch waits for c
    assert await asyncio.wait_for(delivery.drain(), 5)
    assert acked_c == [6, 7, 8, 9]  # c delivered whole (Faust never commits the given-up message: bounded_stop)


async def test_a_batch_being_processed_ends_its_processing_before_the_revoke_goes_on():
    """Its table writes must not land once its partitions have changed hands (Faust's own wait let
    it finish too); then it is not delivered."""
    delivery, alerts, client, _ = make_delivery()
    acked: list[int] = []
    steps = delivery.processor.steps
    timeline: list[str] = []

    def slow_steps(messages, store, every=32):
        timeline.append("processing")
        for _ in range(50):  # run() lets the loop turn between steps
            yield
        result = yield from steps(messages, store, every)
        timeline.append("processed")
        return result

    delivery.processor.steps = slow_steps
    batch = shell_batch(delivery.settings.syscall_topic, range(0, 3), acked)
    agent = asyncio.create_task(delivery.run(batch, stateful=False))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert timeline == ["processing"]
    await asyncio.wait_for(delivery.abandon(messages(batch)), 5)
    timeline.append("abandoned")
    assert timeline == ["processing", "processed", "abandoned"]
    await asyncio.wait_for(agent, 5)
    assert alerts.sent == [] and acked == [] and await delivery.drain()


class CorrelationTable(dict):
    """A Faust table stand-in for the correlation state: what the delivery writes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

        class Topic:
            def get_topic_name(self) -> str:
                return "app-correlation-state-changelog"

        class Assignor:
            def assigned_actives(self):
                from faust.types import TP

                return {TP("app-correlation-state-changelog", 0)}

        self.changelog_topic = Topic()
        self.app = type("App", (), {"assignor": Assignor()})()

    def __setitem__(self, key, value) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


async def test_a_given_up_batch_writes_no_correlation_state_and_its_replay_gives_the_alert_again():
    """Drop and execute: three steps delivered, then the last one's batch waits on OpenSearch and
    is given up. Its change to the group (the match made) must not reach the table: the replay
    of the last step completes the sequence again and its alert (same id) is stored."""
    from faust.types import TP  # noqa: F401 - the stand-in's assignor needs faust importable

    from delivery_fakes import FakeMessage

    settings = PipelineSettings.from_env({"PEREGRINE_RULES": "", "PEREGRINE_PARTITIONS": "1", "PEREGRINE_CONFIG_AUDIT": "false"})
    table = CorrelationTable()
    alerts = FakeTopic()
    delivery = BatchDelivery(settings, build_processor(settings), alerts=alerts, deadletters=FakeTopic(), repartition=FakeTopic(),
                             correlation_table=table)
    client = delivery.sink.client = SlowFirstBulk()
    lines = (ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl").read_bytes().splitlines()
    acked: list[int] = []
    topic = settings.syscall_topic
    batch = [FakeEvent(FakeMessage(topic, offset, line), acked) for offset, line in enumerate(lines)]
    await asyncio.wait_for(delivery.run(batch[:6], stateful=False), 5)
    assert await asyncio.wait_for(delivery.drain(), 5)  # no alert yet: delivered at once
    assert acked == list(range(6)) and len(table.writes) == 1
    stored_partial = dict(table)

    await asyncio.wait_for(delivery.run(batch[6:], stateful=False), 5)  # the match: its alert waits on OpenSearch
    await settle()
    first = [orjson.loads(value) for _, value in alerts.sent]
    assert [a["rule"] for a in first] == ["Drop and execute"]
    assert len(table.writes) == 1 and dict(table) == stored_partial  # not before the alert is stored
    await asyncio.wait_for(delivery.abandon(messages(batch[6:])), 5)
    assert acked == list(range(6)) and dict(table) == stored_partial
    assert delivery.correlator.clocks == {}  # the partition's clock starts over from its groups

    client.gate.set()
    replay = [FakeEvent(FakeMessage(topic, offset, lines[offset]), acked) for offset in range(6, len(lines))]
    await asyncio.wait_for(delivery.run(replay, stateful=False), 5)
    assert await asyncio.wait_for(delivery.drain(), 5)
    again = [orjson.loads(value) for _, value in alerts.sent][1:]
    assert [(a["rule"], a["uuid"]) for a in again] == [(a["rule"], a["uuid"]) for a in first]
    assert acked == list(range(len(lines)))
    assert dict(table) == {}
    assert client.bodies[-1].count(b'"create"') == 1
