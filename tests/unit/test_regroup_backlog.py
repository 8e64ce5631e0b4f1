"""A worker that starts behind: its regroup clocks must not move past events it has not read
yet. Two ways they did (the atelier's burst of 25 forbidden execs lost its alert when the
worker started with the whole attack already on its topics, under load):

- one input partition's forwards of a batch go group by group, out of event time, and a
  regroup batch may end between two groups: the later group moved the origin's time and the
  earlier group's events were late. An origin's time now moves with its progress records only;
- one owned input partition read far ahead of another not read yet: the clock had never heard
  of the other. The worker now sends a behind record for it before the batch's forwards
  (pipeline/stream/backlog.py, pipeline/stream/regroup.py)."""

from __future__ import annotations

import orjson
import pytest
from test_regroup import Ref
from test_regroup_progress import Worker, audit

from pipeline.stream.backlog import Backlog
from pipeline.stream.batch import Message
from pipeline.stream.regroup import behind_record, is_progress, open_progress


class Consumer:
    """The worker's consumer as the delivery asks it: its assignment and high watermarks."""

    def __init__(self, highwaters: dict) -> None:
        self.highwaters = highwaters

    def assignment(self):
        return set(self.highwaters)

    def highwater(self, tp):
        if tp not in self.highwaters:
            raise AssertionError(f"{tp} is not assigned")
        return self.highwaters[tp]


def read_regroup(w: Worker, per_batch: int) -> list:
    """The regroup topic's new records read back ``per_batch`` records at a time per partition,
    as a consumer whose fetch ends between them does: the alerts."""
    topic = w.settings.regroup_topic
    alerts = []
    while any(w.read[p] < len(records) for p, records in w.regroup.log.items()):
        messages = []
        for partition, records in w.regroup.log.items():
            for offset in range(w.read[partition], min(w.read[partition] + per_batch, len(records))):
                key, value = records[offset]
                messages.append(Message(topic, partition, offset, key, value, Ref(topic, partition)))
            w.read[partition] = min(w.read[partition] + per_batch, len(records))
        back = w.processor.process(messages, None)
        assert not back.dead_letters
        alerts.extend(a for _, a in back.alerts)
    return alerts


async def test_one_partitions_forwards_split_across_regroup_batches_lose_no_match():
    """The input batch holds another user's exec at 10:20 first, then mallory's 20 execs at 10:00:
    two groups, forwarded in that order to the same regroup partition, read back one message a
    batch. The clock started at 09:55, so at 10:20 its start-up hold is over; when the 10:20
    envelope moved its origin's time, mallory's execs were 20 minutes late."""
    w = Worker()
    await w.audit_batch(0, ["09:55:00"], w.other)
    assert read_regroup(w, 1) == []
    events = [("10:20:00", w.other)] + [(f"10:00:{n:02d}", "mallory") for n in range(20)]
    messages = w.messages(0, [audit(w.offset + n, user, w.namespace[0], at) for n, (at, user) in enumerate(events)])
    result = w.processor.process(messages, None)
    assert list(result.regrouped)[0].decode().endswith(f'["{w.other}"]')  # the later group first
    await w.delivery._deliver(result)
    late = w.stats.late  # mallory's execs, on the input partition's own clock (no correlation of it reads them there)
    alerts = read_regroup(w, 1)
    assert [(a.output_fields["ka.user.name"], len(a.output_fields["corr.events"])) for a in alerts] == [("mallory", 20)]
    assert w.stats.late == late


async def test_a_partition_read_after_another_owned_one_ran_far_ahead_loses_no_match():
    """Both audit partitions are owned and hold a backlog; the first batch reads partition 1
    alone, 10:00 to 10:15 (past the start-up hold); partition 0's 20 execs at 10:02 come next.
    The behind record sent before the first batch's forwards keeps the clock waiting for
    partition 0; without it they were late."""
    w = Worker()
    topic = w.settings.k8s_audit_topic
    backlog = Backlog()
    backlog.started({(topic, 0): 0, (topic, 1): 0})
    consumer = Consumer({(topic, 0): 20, (topic, 1): 17})  # partition 1: read to its end by the batch
    w.delivery.backlog, w.delivery._consumer = backlog, lambda: consumer
    ahead = w.messages(1, [audit(w.offset + n, w.other, w.namespace[1], f"10:{n:02d}:00") for n in range(16)])
    result = w.processor.process(ahead, None)
    w.delivery._note_backlog(ahead, result)
    until = w.processor.scanner.correlator.event_time(audit(0, "x", "ns", "10:15:00"), "k8s_audit")
    assert {p: [orjson.loads(line) for line in lines] for p, lines in result.behind.items()} == \
        {p: [{"source": "k8s_audit", "origin": f"{topic}:0", "behind": until}] for p in (0, 1)}
    await w.delivery._deliver(result)
    # on every regroup partition, the behind record comes first
    assert all(records[0] == (b"progress", behind_record("k8s_audit", f"{topic}:0", until)) for records in w.regroup.log.values())
    assert w.regroup_batch().alerts == []
    assert w.stats.behind == 2  # one clock a regroup partition
    alerts = await w.step(0, [f"10:02:{n:02d}" for n in range(20)])
    assert [(a.output_fields["ka.user.name"], len(a.output_fields["corr.events"])) for a in alerts] == [("mallory", 20)]
    assert w.stats.late == 0


async def test_no_behind_records_once_read_to_the_end_or_for_untracked_sources():
    w = Worker()
    topic = w.settings.k8s_audit_topic
    backlog = Backlog()
    backlog.started({(topic, 0): 5, (topic, 1): 0, (w.settings.cloudtrail_topic, 0): 0})
    # partition 0 read to its end (committed 5 = high watermark 5); the CloudTrail partition is
    # behind but no correlation of its source is regrouped; partition 1 is read by this batch
    consumer = Consumer({(topic, 0): 5, (topic, 1): 2, (w.settings.cloudtrail_topic, 0): 9})
    w.delivery.backlog, w.delivery._consumer = backlog, lambda: consumer
    messages = w.messages(1, [audit(1, "mallory", w.namespace[1], "10:00:00")])  # offset 1: partition 1's last
    result = w.processor.process(messages, None)
    w.delivery._note_backlog(messages, result)
    assert result.progress and result.behind == {}


def test_backlog_says_which_owned_partitions_have_records_not_read_yet():
    backlog = Backlog()
    highwaters = {("a", 0): 10, ("a", 1): 3, ("a", 2): None, ("a", 3): 7}
    assert backlog.behind(highwaters, highwaters.get) == []  # no assignment's starts yet: nothing known
    backlog.started({("a", 0): 4, ("a", 1): 3, ("a", 2): 0})
    assert backlog.behind(highwaters, highwaters.get) == [("a", 0)]  # a 2: high watermark unknown; a 3: start unknown
    for offset in range(4, 9):
        backlog.took("a", 0, offset)
    backlog.took("a", 0, 2)  # an older record (read again after a seek) does not move it back
    assert backlog.behind(highwaters, highwaters.get) == [("a", 0)]
    backlog.took("a", 0, 9)
    assert backlog.behind(highwaters, highwaters.get) == []

    def revoked(tp):
        raise RuntimeError("not assigned")

    backlog.started({("a", 0): 0})  # a new assignment replaces what was known
    assert backlog.behind([("a", 0)], revoked) == [] and backlog.behind([("a", 0)], highwaters.get) == [("a", 0)]


@pytest.mark.parametrize("record, problem", [
    ({"source": "k8s_audit", "origin": "audit:0", "behind": True}, "behind record's 'behind' must be an event time"),
    ({"source": "k8s_audit", "origin": "audit:0", "behind": -1}, "behind record's 'behind' must be an event time"),
    ({"source": "k8s_audit", "origin": "audit:0", "behind": "10:00"}, "behind record's 'behind' must be an event time"),
    ({"source": "k8s_audit", "behind": 5}, "'origin'"),
])
def test_a_malformed_behind_record_says_what_is_wrong(record, problem):
    assert is_progress(record)
    with pytest.raises(ValueError, match=problem):
        open_progress(record)


def test_behind_and_progress_records_read_back():
    assert open_progress(orjson.loads(behind_record("k8s_audit", "audit:3", 7))) == ("k8s_audit", "audit:3", 7, True)
    assert open_progress({"source": "k8s_audit", "origin": "audit:3", "progress": 7}) == ("k8s_audit", "audit:3", 7, False)
