"""Progress records: each batch tells every regroup partition how far each input partition it
read has got (its newest event time), after the batch's forwards, so a regroup clock hears from
an input partition that forwards nothing, as a repartition carries watermarks in Kafka Streams
and Flink (pipeline/stream/regroup.py, pipeline/correlation/evaluate.py).

Through the batch processor and the delivery's producing order: an audit batch is processed,
its records produced to a regroup topic stand-in that keeps each partition's records in the
order sent (as the Kafka producer does), and what each regroup partition holds is read back as
the next batch."""

from __future__ import annotations

import orjson
import pytest
from delivery_fakes import FakeTopic
from test_regroup import EXEC, Ref, worker
from test_regroup_origins import CLOCK, MINUTE, NAME, T0, forward, regrouping

from pipeline.stream.batch import BatchResult, Message, kafka_partition
from pipeline.stream.delivery import BatchDelivery
from pipeline.stream.regroup import open_envelope, progress_record

S = 1_000_000_000


class PartitionedTopic:
    """The regroup topic as the producer fills it: a record goes to the partition it names, else
    to its key's (Kafka's default partitioner); each partition keeps the order of the sends."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.log: dict[int, list[tuple[bytes | None, bytes]]] = {p: [] for p in range(partitions)}

    async def send(self, key=None, value=None, partition=None):
        import asyncio

        if partition is None:
            partition = kafka_partition(key, self.partitions)
        self.log[partition].append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def audit(n: int, user: str, namespace: str, at: str, exec_: bool = True) -> dict:
    """A forbidden exec by ``user`` at ``at`` (HH:MM:SS on 2026-11-30), else a get that matches no
    correlation step: nothing forwarded, but the partition's time moves."""
    ref = {"resource": "pods", "namespace": namespace, "name": f"web-{n}"}
    if exec_:
        ref["subresource"] = "exec"
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"p-{user}-{n}", "stage": "ResponseComplete",
            "verb": "create" if exec_ else "get", "user": {"username": user}, "objectRef": ref,
            "responseStatus": {"code": 403 if exec_ else 200}, "stageTimestamp": f"2026-11-30T{at}Z"}


class Worker:
    """A worker over two partitions of the audit topic, its batches produced through
    BatchDelivery._deliver to a PartitionedTopic, and the regroup partitions read back."""

    def __init__(self) -> None:
        self.settings, self.processor, _ = worker(2)
        self.regroup = PartitionedTopic(2)
        self.delivery = BatchDelivery(self.settings, self.processor, alerts=FakeTopic(), deadletters=FakeTopic(),
                                      repartition=FakeTopic(), regroup=self.regroup)
        names = [f"ns-{i}" for i in range(50)]
        self.namespace = {p: next(n for n in names if kafka_partition(n.encode(), 2) == p) for p in (0, 1)}
        self.offset = 0
        self.read = {0: 0, 1: 0}  # what has been read of each regroup partition
        self.home = kafka_partition(f'{EXEC}\x1f["mallory"]'.encode(), 2)  # mallory's regroup partition
        # another user on mallory's clock: a threshold's window ends at its group's newest event
        self.other = next(u for u in (f"user-{i}" for i in range(100))
                          if kafka_partition(f'{EXEC}\x1f["{u}"]'.encode(), 2) == self.home)

    def messages(self, partition: int, events: list[dict]) -> list[Message]:
        topic = self.settings.k8s_audit_topic
        out = []
        for event in events:
            self.offset += 1
            out.append(Message(topic, partition, self.offset, self.namespace[partition].encode(), orjson.dumps(event),
                               Ref(topic, partition)))
        return out

    async def audit_batch(self, partition: int, times: list[str], user: str = "mallory", exec_: bool = True) -> BatchResult:
        events = [audit(self.offset + n, user, self.namespace[partition], at, exec_) for n, at in enumerate(times)]
        result = self.processor.process(self.messages(partition, events), None)
        assert result.alerts == [] and not result.dead_letters
        await self.delivery._deliver(result)
        return result

    def regroup_batch(self) -> BatchResult:
        """What each regroup partition holds that is not read yet, as one batch (in each
        partition's order)."""
        topic = self.settings.regroup_topic
        messages = []
        for partition, records in self.regroup.log.items():
            for offset in range(self.read[partition], len(records)):
                key, value = records[offset]
                messages.append(Message(topic, partition, offset, key, value, Ref(topic, partition)))
            self.read[partition] = len(records)
        return self.processor.process(messages, None)

    async def step(self, partition: int, times: list[str], user: str = "mallory", exec_: bool = True) -> list:
        """One batch of ``partition``, then the regroup topic's new records: the alerts."""
        await self.audit_batch(partition, times, user, exec_)
        back = self.regroup_batch()
        assert not back.dead_letters and back.events == 0
        return [a for _, a in back.alerts]

    @property
    def stats(self):
        return self.processor.scanner.correlator.stats


async def test_a_lagging_partition_that_forwards_nothing_for_regroup_idle_loses_no_match():
    """Both partitions forward at 10:00; then partition 0 moves on to 10:24 with step events while
    partition 1 lags (10:03 to 10:09) and forwards nothing: more than regroup_idle (10m) of the
    clock's time without an event from it. Its next events, mallory's 20 execs at 10:10, are older
    than partition 0's watermark. Without progress records partition 1 was idle, forgotten, and
    those 20 were late: the alert was lost."""
    w = Worker()
    assert await w.step(0, ["10:00:00"], w.other) == [] and await w.step(1, ["10:00:00"], w.other) == []
    for leading, lagging in (("10:06:00", "10:03:00"), ("10:12:00", "10:06:00"), ("10:18:00", "10:09:00")):
        assert await w.step(0, [leading], w.other) == []
        assert await w.step(1, [lagging], "reader", exec_=False) == []  # no step matched: nothing forwarded
    assert await w.step(0, ["10:24:00"], w.other) == []
    alerts = await w.step(1, [f"10:10:{n:02d}" for n in range(20)])
    assert [(a.rule, a.output_fields["ka.user.name"], len(a.output_fields["corr.events"])) for a in alerts] == [(EXEC, "mallory", 20)]
    assert w.stats.late == 0 and w.stats.idle_origins == 0
    # the watermark held back by partition 1's progress, not by its last forwarded event
    clock = (w.home, "k8s_audit@regrouped")
    assert w.processor.scanner.correlator.clocks[clock] == w.processor.scanner.correlator.event_time(
        audit(0, "x", "ns", "10:10:19"), "k8s_audit")


async def test_each_batch_sends_every_regroup_partition_the_newest_time_of_each_input_partition_after_its_forwards():
    w = Worker()
    time = w.processor.scanner.correlator.event_time
    topic = w.settings.k8s_audit_topic
    events = [audit(1, "mallory", w.namespace[0], "10:00:05"), audit(2, "reader", w.namespace[0], "10:00:09", exec_=False),
              audit(3, "mallory", w.namespace[1], "10:00:07"), audit(4, "reader", w.namespace[0], "10:00:02", exec_=False),
              audit(5, "reader", w.namespace[1], "00:00:00", exec_=False)]
    events[-1]["stageTimestamp"] = "2099-01-01T00:00:00Z"  # from the future: the correlations do not take it
    messages = w.messages(0, events[:2]) + w.messages(1, events[2:3]) + w.messages(0, events[3:4]) + w.messages(1, events[4:])
    result = w.processor.process(messages, None)
    expected = [{"source": "k8s_audit", "origin": f"{topic}:0", "progress": time(events[1], "k8s_audit")},
                {"source": "k8s_audit", "origin": f"{topic}:1", "progress": time(events[2], "k8s_audit")}]
    assert {p: [orjson.loads(line) for line in lines] for p, lines in result.progress.items()} == {0: expected, 1: expected}
    await w.delivery._deliver(result)
    # on each partition, the progress records (one message: a line per input partition) come
    # last, after the batch's forwards: mallory's two execs went to her group's partition
    for partition, records in w.regroup.log.items():
        forwarded = [value.count(b'"event"') for _, value in records[:-1]]
        assert forwarded == ([2] if partition == w.home else [])
        key, value = records[-1]
        assert key == b"progress" and [orjson.loads(line) for line in value.split(b"\n")] == expected
    # reading them back: no event, no dead letter, no alert, and no progress records of their own
    back = w.regroup_batch()
    assert (back.events, back.dead_letters, back.alerts, back.progress, back.regrouped) == (0, [], [], {}, {})
    assert w.stats.progress == 4  # two origins, on each of the two clocks


async def test_no_progress_records_without_regrouped_correlations_or_events_of_their_sources():
    w = Worker()
    # a syscall batch: no syscall correlation is regrouped here, so nothing is tracked
    syscall = Message(w.settings.syscall_topic, 0, 0, b"c1", orjson.dumps({"evt.type": "open", "evt.time": T0,
                                                                          "container.id": "c1"}), Ref(w.settings.syscall_topic, 0))
    assert w.processor.process([syscall], None).progress == {}
    settings, one, _ = worker(1)  # one partition: nothing is regrouped
    topic = settings.k8s_audit_topic
    only = Message(topic, 0, 0, b"ns", orjson.dumps(audit(1, "eve", "ns", "10:00:00")), Ref(topic, 0))
    assert one.process([only], None).progress == {}


def test_a_progress_record_is_no_event_and_no_dead_letter_and_an_old_envelope_still_works():
    settings, processor, _ = worker(2)
    topic = settings.regroup_topic
    key = f'{EXEC}\x1f["oscar"]'.encode()
    partition = kafka_partition(key, 2)
    time = processor.scanner.correlator.event_time
    execs = [audit(n, "oscar", "ns-a", f"10:00:{n:02d}") for n in range(20)]
    legacy = [orjson.dumps({"source": "k8s_audit", "correlations": [EXEC], "event": e}) for e in execs]  # no origin
    progress = [progress_record("k8s_audit", f"{settings.k8s_audit_topic}:{p}", time(execs[-1], "k8s_audit")) for p in (0, 1)]
    # a progress record of a source no correlation is regrouped for here (the rules changed): ignored
    progress.append(progress_record("aws_cloudtrail", f"{settings.cloudtrail_topic}:0", time(execs[0], "k8s_audit")))
    value = b"\n".join(legacy[:10] + progress + legacy[10:])
    result = processor.process([Message(topic, partition, 0, key, value, Ref(topic, partition))], None)
    assert [(a.rule, len(a.output_fields["corr.events"])) for _, a in result.alerts] == [(EXEC, 20)]
    assert result.dead_letters == [] and result.events == 0 and result.progress == {}
    stats = processor.scanner.correlator.stats
    assert (stats.events, stats.progress, stats.late) == (20, 2, 0)


@pytest.mark.parametrize("record, problem", [
    ({"source": "k8s_audit", "origin": "audit:0", "progress": "10:00"}, "'progress'"),
    ({"source": "k8s_audit", "origin": "audit:0", "progress": True}, "'progress'"),
    ({"source": "k8s_audit", "origin": "audit:0", "progress": -5}, "'progress'"),
    ({"source": "k8s_audit", "progress": 5}, "'origin'"),
    ({"source": "k8s_audit", "origin": "x" * 301, "progress": 5}, "'origin'"),
    ({"origin": "audit:0", "progress": 5}, "'source'"),
])
def test_a_malformed_progress_record_is_a_schema_dead_letter(record, problem):
    settings, processor, _ = worker(2)
    topic = settings.regroup_topic
    result = processor.process([Message(topic, 0, 3, b"progress", orjson.dumps(record), Ref(topic, 0))], None)
    assert [(d.reason, d.offset, d.index) for d in result.dead_letters] == [("schema", 3, 0)]
    assert problem in result.dead_letters[0].detail and processor.scanner.correlator.stats.progress == 0


def test_an_older_worker_reads_a_progress_record_as_an_envelope_without_event():
    """What a worker from before progress records does with one (a rolling upgrade): its
    open_envelope refuses it, a schema dead letter; docs/pipeline.md says so."""
    with pytest.raises(ValueError, match="'event' object"):
        open_envelope(orjson.loads(progress_record("k8s_audit", "audit:0", 5)))


# -- the evaluator: a progress record on a regrouped clock


A, B = "audit:0", "audit:1"


def test_progress_keeps_an_origin_heard_from_and_holds_the_watermark_at_its_time():
    ev = regrouping()
    forward(ev, A, T0, "warm-up", exec_=False)
    forward(ev, B, T0, "warm-up", exec_=False)
    for minute in (6, 12, 18, 24):
        forward(ev, A, T0 + minute * MINUTE, "warm-up", exec_=False)
        ev.progress("k8s_audit", B, T0 + minute // 2 * MINUTE)
    # 4 of B's, and the 6 forward() sends after each envelope
    assert ev.stats.idle_origins == 0 and ev.stats.events == 6 and ev.stats.progress == 10
    assert ev.watermark(CLOCK) == T0 + 12 * MINUTE - 5 * S
    alerts = [a for at in range(3) for a in forward(ev, B, T0 + 13 * MINUTE + at * S, "eve")]
    assert [a.count for a in alerts] == [3] and ev.stats.late == 0


def test_progress_never_goes_back_and_moves_the_watermark_and_expiry():
    ev = regrouping()
    forward(ev, A, T0, "warm-up", exec_=False)
    forward(ev, B, T0 + 2 * MINUTE, "warm-up", exec_=False)
    forward(ev, A, T0 + 3 * MINUTE, "bob")  # bob's group: window to T0+4m
    forward(ev, A, T0 + 11 * MINUTE, "warm-up", exec_=False)  # past the start-up hold
    assert ev.open_groups == 1 and ev.watermark(CLOCK) == T0 + 2 * MINUTE - 5 * S  # B holds it
    ev.progress("k8s_audit", B, T0 + 5 * MINUTE)  # B has read up to 5m: bob's window is over
    assert ev.watermark(CLOCK) == T0 + 5 * MINUTE - 5 * S and ev.open_groups == 0 and ev.stats.expired_groups == 1
    ev.progress("k8s_audit", B, T0 + 2 * MINUTE)  # an older one (a replay): the time stays
    assert ev._origins[CLOCK].newest[B] == T0 + 5 * MINUTE and ev.watermark(CLOCK) == T0 + 5 * MINUTE - 5 * S


def test_progress_from_the_future_or_of_another_source_is_ignored():
    ev = regrouping()
    forward(ev, A, T0, "warm-up", exec_=False)
    ev.progress("k8s_audit", B, 4_000_000_000 * S)  # year 2096: another worker's clock, or a forged record
    ev.progress("syscall", B, T0)
    assert set(ev._origins[CLOCK].newest) == {A} and ev._origins[CLOCK].high == T0
    assert ev.stats.progress == 1 and ev.stats.future == 0  # forward()'s own


def test_the_worker_reads_the_progress_of_the_events_the_correlator_took():
    """progress_time: set only on the sources with regrouped correlations, from the events
    accepted on their own clock."""
    ev = regrouping()
    ev.progress_time = -1
    event = {"ka.auditid": "x", "evt.time": T0, "ka.user.name": "u", "ka.verb": "get"}
    ev.process(event, "k8s_audit")
    assert ev.progress_time == T0
    ev.process(dict(event, **{"evt.time": T0 - MINUTE}), "k8s_audit")
    ev.process(dict(event, **{"evt.time": 4_000_000_000 * S}), "k8s_audit")  # from the future: refused
    assert ev.progress_time == T0 and ev.stats.future == 1
