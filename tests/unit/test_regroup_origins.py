"""A regrouped clock merges the events forwarded from every input partition (its origins):
its watermark is the oldest of their newest event times minus the lateness, so a partition
that lags behind another by more than the lateness (a backlog, a slower worker, a partition
replayed after a restart) loses no match; an origin that forwards nothing for regroup_idle
of event time stops holding it back; the origins per clock are bounded
(pipeline/correlation/evaluate.py)."""

from __future__ import annotations

import orjson
import pytest
from correlation_fields import registry_for
from correlation_helpers import S, load_text
from test_regroup import EXEC, Ref, worker

from pipeline.correlation import CorrelationEvaluator, CorrelationLimits
from pipeline.correlation.evaluate import REGROUPED
from pipeline.stream.batch import Message, kafka_partition

T0 = 1_700_000_000 * S
MINUTE = 60 * S
LATENESS = 5 * S
NAME = "Forbidden execs"
RULES = f"""
- correlation: {NAME}
  type: threshold
  source: k8s_audit
  condition: ka.target.subresource = exec and ka.response.code = "403"
  by: ka.user.name
  window: 1m
  count: 3
  output: "%corr.count forbidden execs by %ka.user.name"
  priority: WARNING
"""
A, B = "audit:0", "audit:1"
CLOCK = (0, "k8s_audit" + REGROUPED)


class PartitionStore(dict):
    """The worker's store as the evaluator sees it (TableCorrelationStore's ``clock`` and
    ``clocked_items``), bound to regroup partition 0."""

    clock = 0

    def clocked_items(self):
        return [(key, state, self.clock) for key, state in self.items()]


def regrouping(store: PartitionStore | None = None, **limits) -> CorrelationEvaluator:
    _, correlations = load_text(RULES)
    limits.setdefault("allowed_lateness_ns", LATENESS)
    limits.setdefault("regroup_idle_ns", 10 * MINUTE)
    return CorrelationEvaluator(correlations, registry_for, limits=CorrelationLimits(**limits),
                                store=PartitionStore() if store is None else store, regroup=[NAME])


_ids = iter(range(1_000_000))


def forward(ev: CorrelationEvaluator, origin: str | None, at: int, user: str = "mallory", exec_: bool = True) -> list:
    """An event back from the regroup topic, forwarded from ``origin``: a forbidden exec by
    ``user`` at ``at`` (else a get that matches no step but moves the clock), then, as a worker
    sends after each batch's forwards, ``origin``'s progress record at ``at`` (an origin's time
    moves with its progress records; envelopes without origin, an earlier Peregrine's, move
    it themselves)."""
    event = {"ka.auditid": f"id-{next(_ids)}", "evt.time": at, "ka.user.name": user, "ka.verb": "create" if exec_ else "get",
             "ka.target.resource": "pods", "ka.target.subresource": "exec" if exec_ else "", "ka.response.code": "403"}
    alerts = ev.process(event, "k8s_audit", regrouped=[NAME], origin=origin)
    if origin is not None:
        ev.progress("k8s_audit", origin, at)
    return alerts


def known_and_past_start(ev: CorrelationEvaluator, lagging: str | None, leading: str = A) -> None:
    """Both origins heard from at T0 and T0+8m; then ``leading`` alone at T0+12m, past the
    10 minutes during which origins not heard from yet could still forward anything."""
    for at in (T0, T0 + 8 * MINUTE):
        forward(ev, leading, at, "warm-up", exec_=False)
        forward(ev, lagging, at, "warm-up", exec_=False)
    forward(ev, leading, T0 + 12 * MINUTE, "warm-up", exec_=False)


@pytest.mark.parametrize("lagging", [B, None], ids=["origin", "legacy envelopes without origin"])
def test_an_origin_lagging_more_than_the_lateness_loses_no_match(lagging):
    ev = regrouping()
    known_and_past_start(ev, lagging)
    # the lagging partition's forbidden execs, 3 minutes behind the other's newest
    alerts = [a for at in range(3) for a in forward(ev, lagging, T0 + 9 * MINUTE + at * S, "eve")]
    assert [(a.rule, a.group, a.count) for a in alerts] == [(NAME, {"ka.user.name": "eve"}, 3)]
    assert ev.stats.late == 0
    # the watermark: the lagging origin's newest (it is the oldest) minus the lateness
    assert ev.watermark(CLOCK) == T0 + 9 * MINUTE + 2 * S - LATENESS
    # within one origin, the lateness still holds
    assert forward(ev, lagging, T0 + 9 * MINUTE - 4 * S, "eve") == [] and ev.stats.late == 1


def test_an_origin_is_late_against_the_merged_watermark_not_the_newest():
    ev = regrouping()
    known_and_past_start(ev, B)
    forward(ev, B, T0 + 11 * MINUTE, "warm-up", exec_=False)  # B catches up to 11m: A's 12m is the newest
    assert ev.watermark(CLOCK) == T0 + 11 * MINUTE - LATENESS
    assert forward(ev, A, T0 + 11 * MINUTE - 6 * S) == [] and ev.stats.late == 1  # older than the merged watermark


def test_an_idle_origin_does_not_hold_expiry_forever():
    ev = regrouping()
    forward(ev, A, T0, "bob")
    forward(ev, B, T0, "bob")  # bob's group: window to T0+1m
    forward(ev, B, T0 + 2 * MINUTE, "warm-up", exec_=False)
    forward(ev, A, T0 + 9 * MINUTE, "warm-up", exec_=False)
    assert ev.open_groups == 1  # B, last heard at 2m, may still forward something older
    # and does: bob's third exec within the minute, which completes his threshold
    assert [a.count for a in forward(ev, B, T0 + 30 * S, "bob")] == [3] and ev.stats.late == 0
    assert ev.open_groups == 1
    forward(ev, A, T0 + 20 * MINUTE + S, "warm-up", exec_=False)  # B heard last at 9m: idle since 19m
    assert ev.stats.idle_origins == 1
    assert ev.open_groups == 0 and ev.stats.expired_groups == 1  # expired on A's watermark alone
    assert ev.watermark(CLOCK) == T0 + 20 * MINUTE + S - LATENESS
    # B forwards again: it joins as a new origin; what it forwards older than the watermark is late
    assert forward(ev, B, T0 + 3 * MINUTE, "bob") == [] and ev.stats.late == 1
    assert forward(ev, B, T0 + 20 * MINUTE, "bob") == [] and ev.stats.late == 1 and ev.open_groups == 1


def test_origins_not_heard_from_yet_hold_the_watermark_only_for_regroup_idle():
    """A fresh clock does not know which partitions will forward: for regroup_idle of event
    time past its first event nothing is late (a backlog's partition may be behind), then the
    origins it knows make its watermark."""
    ev = regrouping()
    forward(ev, A, T0 + 9 * MINUTE, "warm-up", exec_=False)
    alerts = [a for at in range(3) for a in forward(ev, B, T0 + at * S, "eve")]  # 9 minutes behind, unknown so far
    assert [a.count for a in alerts] == [3] and ev.stats.late == 0
    assert ev.watermark(CLOCK) < 0  # nothing expires meanwhile
    forward(ev, A, T0 + 19 * MINUTE + S, "warm-up", exec_=False)  # B idle too (heard at 9m)
    assert ev.watermark(CLOCK) == T0 + 19 * MINUTE + S - LATENESS and ev.open_groups == 0


def test_the_origins_of_a_clock_are_bounded():
    def run(bound: int) -> CorrelationEvaluator:
        ev = regrouping(regroup_idle_ns=60 * MINUTE, max_regroup_origins=bound)
        forward(ev, "audit:1", T0, exec_=False)
        forward(ev, "audit:2", T0, exec_=False)
        forward(ev, "audit:1", T0 + 30 * MINUTE, exec_=False)
        forward(ev, "audit:2", T0 + 61 * MINUTE, exec_=False)  # past the hour: audit:1 (at 30m) holds the watermark
        forward(ev, "audit:3", T0 + 61 * MINUTE, exec_=False)  # over a bound of 2: audit:1, heard least recently, goes
        return ev

    kept = run(3)
    assert kept.watermark(CLOCK) == T0 + 30 * MINUTE - LATENESS and kept.stats.forgotten_origins == 0
    bounded = run(2)
    assert bounded.stats.forgotten_origins == 1 and set(bounded._origins[CLOCK].newest) == {"audit:2", "audit:3"}
    assert bounded.watermark(CLOCK) == T0 + 61 * MINUTE - LATENESS
    for n in range(10_000):  # a producer inventing origins: memory stays bounded
        forward(bounded, f"made-up:{n}", T0 + 61 * MINUTE, exec_=False)
    assert len(bounded._origins[CLOCK].newest) == len(bounded._origins[CLOCK].heard) == 2


def test_a_restarted_worker_makes_no_event_late_that_the_merged_clock_accepted():
    """The groups a regrouped clock recovers record the leading origin's times, not the merged
    time: restarted from them, the lagging origin's next events would be late. Its origins
    start unknown instead."""
    store = PartitionStore()
    ev = regrouping(store)
    known_and_past_start(ev, B)
    forward(ev, A, T0 + 12 * MINUTE, "trent")  # a group recording A's 12m
    restarted = regrouping(store)
    assert set(restarted.clocks) == {CLOCK} and restarted.open_groups == 1
    alerts = [a for at in range(3) for a in forward(restarted, B, T0 + 9 * MINUTE + at * S, "eve")]
    assert [a.count for a in alerts] == [3] and restarted.stats.late == 0


def test_reindex_keeps_a_running_regrouped_clock():
    ev = regrouping()
    known_and_past_start(ev, B)
    forward(ev, A, T0 + 12 * MINUTE, "trent")
    before = ev.watermark(CLOCK)
    ev.reindex()  # a rebalance that left this worker its partitions
    assert ev.watermark(CLOCK) == before == T0 + 8 * MINUTE - LATENESS
    assert forward(ev, B, T0 + 8 * MINUTE + 30 * S, "eve") == [] and ev.stats.late == 0


def test_the_non_regrouped_path_keeps_one_clock_per_partition_and_no_origins():
    ev = regrouping()
    assert ev.process({"evt.time": T0, "ka.user.name": "x"}, "k8s_audit") == []
    assert ev._origins == {} and ev.clocks == {(0, "k8s_audit"): T0}


# -- through the batch processor: the worker's envelopes, read back batch by batch


def audit_exec(n: int, user: str, namespace: str, at: str) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"{user}-{n}", "stage": "ResponseComplete",
            "verb": "create", "user": {"username": user},
            "objectRef": {"resource": "pods", "namespace": namespace, "name": f"web-{n}", "subresource": "exec"},
            "responseStatus": {"code": 403}, "stageTimestamp": f"2026-11-30T{at}Z"}


class TwoPartitions:
    """A worker over two partitions of the audit topic; each call is one batch of one
    partition's events, then its forwards read back as one batch of the regroup topic."""

    def __init__(self) -> None:
        self.settings, self.processor, _ = worker(2)
        names = [f"ns-{i}" for i in range(50)]
        self.namespace = {p: next(n for n in names if kafka_partition(n.encode(), 2) == p) for p in (0, 1)}
        self.offset = 0
        # a user whose group shares mallory's regroup partition, so her clock: a threshold prunes its
        # window from the group's newest event, so the newer events must be another group's
        home = kafka_partition(f'{EXEC}\x1f["mallory"]'.encode(), 2)
        self.other = next(u for u in (f"user-{i}" for i in range(100)) if kafka_partition(f'{EXEC}\x1f["{u}"]'.encode(), 2) == home)

    def batch(self, partition: int, times: list[str], user: str = "mallory") -> list:
        """Alerts of forbidden execs by ``user`` at ``times`` (HH:MM:SS), read from ``partition``."""
        topic = self.settings.k8s_audit_topic
        messages = []
        for at in times:
            self.offset += 1
            event = audit_exec(self.offset, user, self.namespace[partition], at)
            messages.append(Message(topic, partition, self.offset, self.namespace[partition].encode(), orjson.dumps(event),
                                    Ref(topic, partition)))
        first = self.processor.process(messages, None)
        assert first.alerts == [] and not first.dead_letters
        alerts = []
        for key, lines in first.regrouped.items():
            back = kafka_partition(key, 2)
            result = self.processor.process([Message(self.settings.regroup_topic, back, self.offset, key, b"\n".join(lines),
                                                     Ref(self.settings.regroup_topic, back))], None)
            assert not result.dead_letters
            alerts += [a for _, a in result.alerts]
        return alerts

    @property
    def stats(self):
        return self.processor.scanner.correlator.stats


def test_a_partitions_backlog_read_a_batch_after_another_partitions_newer_events_loses_no_match():
    """The atelier's and a restart's case: partition 0's events half an hour newer are
    regrouped first; partition 1's 20 execs (its backlog) come back in a later batch."""
    worker_ = TwoPartitions()
    assert worker_.batch(0, ["10:30:00"], worker_.other) == []
    alerts = worker_.batch(1, [f"10:00:{n:02d}" for n in range(20)])
    assert [(a.rule, len(a.output_fields["corr.events"])) for a in alerts] == [(EXEC, 20)]
    assert worker_.stats.late == 0


def test_a_partition_lagging_behind_a_known_one_across_batches_loses_no_match():
    """Both partitions forwarded before (the clock knows them, past its start); then partition
    0 moves 6 minutes ahead while partition 1, lagging, forwards 20 execs in a later batch."""
    worker_ = TwoPartitions()
    for at in ("10:00:00", "10:08:00"):
        assert worker_.batch(0, [at], worker_.other) == [] and worker_.batch(1, [at], worker_.other) == []
    assert worker_.batch(0, ["10:16:00"], worker_.other) == []  # regroup_idle (10m) past the clock's start
    alerts = worker_.batch(1, [f"10:10:{n:02d}" for n in range(20)])
    assert [(a.rule, len(a.output_fields["corr.events"])) for a in alerts] == [(EXEC, 20)]
    assert worker_.stats.late == 0


def test_legacy_envelopes_without_origin_are_evaluated_as_one_origin():
    settings, processor, _ = worker(2)
    topic = settings.regroup_topic
    key = f'{EXEC}\x1f["oscar"]'.encode()
    partition = kafka_partition(key, 2)

    def message(offset: int, events: list[dict], origin: str | None) -> Message:
        extra = {} if origin is None else {"origin": origin}
        lines = b"\n".join(orjson.dumps({"source": "k8s_audit", "correlations": [EXEC], "event": e, **extra}) for e in events)
        return Message(topic, partition, offset, key, lines, Ref(topic, partition))

    ahead = [audit_exec(n, "otto", "ns-a", f"10:{m:02d}:00") for n, m in enumerate((0, 8, 16))]  # on oscar's clock
    assert processor.process([message(0, ahead[:1], None), message(1, ahead[:1], "k8s:0")], None).alerts == []
    assert processor.process([message(2, ahead[1:2], None), message(3, ahead[1:2], "k8s:0")], None).alerts == []
    assert processor.process([message(4, ahead[2:], "k8s:0")], None).alerts == []
    behind = [audit_exec(n + 10, "oscar", "ns-a", f"10:10:{n:02d}") for n in range(20)]
    result = processor.process([message(5, behind, None)], None)  # the legacy origin lags
    assert [a.rule for _, a in result.alerts] == [EXEC] and not result.dead_letters
    assert processor.scanner.correlator.stats.late == 0


@pytest.mark.parametrize("origin", [5, "", "x" * 301])
def test_an_envelope_whose_origin_is_no_topic_partition_is_a_dead_letter(origin):
    settings, processor, _ = worker(2)
    topic = settings.regroup_topic
    line = orjson.dumps({"source": "k8s_audit", "correlations": [EXEC], "event": audit_exec(1, "eve", "ns-a", "10:00:00"),
                         "origin": origin})
    result = processor.process([Message(topic, 0, 9, b"k", line, Ref(topic, 0))], None)
    assert [(d.reason, d.index) for d in result.dead_letters] == [("schema", 0)]
    assert "'origin'" in result.dead_letters[0].detail
