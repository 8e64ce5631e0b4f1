"""Correlations grouped by another field than their topic's key go through the regroup
topic (pipeline/stream/regroup.py): one user's forbidden execs, spread by namespace over two
partitions, still make one threshold group, evaluated in the group's own partition."""

from __future__ import annotations

import orjson
import pytest
from test_correlation_table import CURRENT, ChangelogTable

from pipeline.correlation.table import TableCorrelationStore
from pipeline.stream.batch import DictStateStore, Message, kafka_partition
from pipeline.stream.regroup import TOPIC_KEY_FIELDS, open_envelope, regrouped_correlations
from pipeline.stream.settings import PipelineSettings

EXEC = "Repeated forbidden kubectl exec"
SELF_ESCALATION = "RBAC self-escalation"


class Ref:
    """A Faust event as the correlation store binds it (its message's topic and partition)."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = self
        self.topic, self.partition = topic, partition


def forbidden_exec(n: int, user: str, namespace: str) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"a{n}", "stage": "ResponseComplete", "verb": "create",
            "user": {"username": user}, "objectRef": {"resource": "pods", "namespace": namespace, "name": f"web-{n}", "subresource": "exec"},
            "responseStatus": {"code": 403}, "stageTimestamp": f"2026-11-30T10:00:{n:02d}Z"}


def worker(partitions: int):
    from pipeline.stream.delivery import build_processor

    settings = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": str(partitions), "PEREGRINE_CONFIG_AUDIT": "false"})
    processor = build_processor(settings)
    table = ChangelogTable()
    processor.use_correlation_store(TableCorrelationStore(table, CURRENT, partitions=partitions, topic="corr-changelog"))
    return settings, processor, table


def namespaces_on_two_partitions() -> tuple[str, str]:
    names = [f"ns-{i}" for i in range(50)]
    return (next(n for n in names if kafka_partition(n.encode(), 2) == 0), next(n for n in names if kafka_partition(n.encode(), 2) == 1))


def audit_messages(settings, events: list[dict], partitions: int) -> list[Message]:
    topic = settings.k8s_audit_topic
    out = []
    for offset, event in enumerate(events):
        key = event["objectRef"]["namespace"].encode()
        partition = kafka_partition(key, partitions)
        out.append(Message(topic, partition, offset, key, orjson.dumps(event), Ref(topic, partition)))
    return out


def test_only_correlations_not_keyed_like_their_topic_are_regrouped_and_only_with_partitions():
    from pipeline.stream.delivery import build_processor

    correlations = build_processor(PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "2"})).scanner.correlator.correlations
    assert {c.name: TOPIC_KEY_FIELDS[c.source] in c.by for c in correlations}[EXEC] is False
    assert regrouped_correlations(correlations, 2) == {EXEC, SELF_ESCALATION}  # by user; the syscall ones are by container.id
    assert regrouped_correlations(correlations, 1) == frozenset()


def test_a_users_execs_in_two_partitions_meet_in_their_groups_partition():
    settings, processor, table = worker(2)
    home, away = namespaces_on_two_partitions()
    events = [forbidden_exec(n, "mallory", home if n % 2 else away) for n in range(20)]
    first = processor.process(audit_messages(settings, events, 2), None)
    # where the events arrived, the threshold is not counted: each partition would see 10 of 20
    assert [a.rule for _, a in first.alerts] == [] and not first.dead_letters
    assert not any(key.startswith(EXEC) for key in table)
    [(key, lines)] = first.regrouped.items()
    assert key == f'{EXEC}\x1f["mallory"]'.encode() and len(lines) == 20
    source, names, event, origin = open_envelope(orjson.loads(lines[0]))
    # a0 is in ``away``'s namespace, read from partition 1: the regroup clock keeps that origin apart
    assert (source, names, event["auditID"], origin) == ("k8s_audit", [EXEC], "a0", f"{settings.k8s_audit_topic}:1")

    # back from the regroup topic, on the group's partition
    partition = kafka_partition(key, 2)
    back = Message(settings.regroup_topic, partition, 0, key, b"\n".join(lines), Ref(settings.regroup_topic, partition))
    second = processor.process([back], None)
    assert [(k, a.rule, len(a.output_fields["corr.events"])) for k, a in second.alerts] == [(key, EXEC, 20)]
    assert "Warning 20 forbidden exec attempts by mallory within a minute" in second.alerts[0][1].output
    assert second.events == 0 and second.regrouped == {}  # not counted twice, not sent round again
    assert {p for k, p, _, _ in table.changelog if k.startswith(EXEC)} == {partition}


def test_with_one_partition_the_threshold_is_counted_where_the_events_arrive():
    settings, processor, _ = worker(1)
    events = [forbidden_exec(n, "mallory", "ns-a" if n % 2 else "ns-b") for n in range(20)]
    result = processor.process(audit_messages(settings, events, 1), DictStateStore())
    assert [a.rule for _, a in result.alerts] == [EXEC] and result.regrouped == {}


@pytest.mark.parametrize("line, problem", [
    (b'{"source": "k8s_audit", "correlations": ["x"], "event": 5}', "'event' object"),
    (b'{"source": "k8s_audit", "event": {}}', "'correlations'"),
    (b'{"source": 3, "correlations": ["x"], "event": {}}', "'source' string"),
])
def test_a_bad_envelope_is_dead_lettered_and_the_rest_goes_on(line, problem):
    settings, processor, _ = worker(2)
    good = orjson.dumps({"source": "k8s_audit", "correlations": [EXEC], "event": forbidden_exec(1, "eve", "ns-a")})
    topic = settings.regroup_topic
    result = processor.process([Message(topic, 0, 5, b"k", line + b"\n" + good, Ref(topic, 0))], None)
    assert [(d.reason, d.offset, d.index) for d in result.dead_letters] == [("schema", 5, 0)]
    assert problem in result.dead_letters[0].detail and result.alerts == []


def through_both_stages(settings, processor, events: list[dict]) -> list:
    first = processor.process(audit_messages(settings, events, 2), None)
    alerts = list(first.alerts)
    for key, lines in first.regrouped.items():
        partition = kafka_partition(key, 2)
        back = Message(settings.regroup_topic, partition, 0, key, b"\n".join(lines), Ref(settings.regroup_topic, partition))
        alerts += processor.process([back], None).alerts
    return alerts


def test_a_regrouped_group_is_recovered_from_the_table_on_its_own_clock_after_a_restart():
    settings, processor, table = worker(2)
    home, away = namespaces_on_two_partitions()
    events = [forbidden_exec(n, "trudy", home if n % 2 else away) for n in range(20)]
    assert through_both_stages(settings, processor, events[:15]) == []
    partition = kafka_partition(f'{EXEC}\x1f["trudy"]'.encode(), 2)
    assert (partition, "k8s_audit@regrouped") in processor.scanner.correlator.clocks

    from pipeline.stream.delivery import build_processor

    restarted = build_processor(settings)  # a new worker process: the table is what it has
    restarted.use_correlation_store(TableCorrelationStore(table, CURRENT, partitions=2, topic="corr-changelog"))
    assert set(restarted.scanner.correlator.clocks) == {(partition, "k8s_audit@regrouped")}
    alerts = through_both_stages(settings, restarted, events[15:])
    assert [(a.rule, len(a.output_fields["corr.events"])) for _, a in alerts] == [(EXEC, 20)]


def test_an_envelope_for_a_correlation_no_longer_loaded_is_a_dead_letter_not_a_silent_drop():
    settings, processor, table = worker(2)
    topic = settings.regroup_topic
    gone = orjson.dumps({"source": "k8s_audit", "correlations": ["Removed since"], "event": forbidden_exec(1, "eve", "ns-a")})
    both = orjson.dumps({"source": "k8s_audit", "correlations": ["Removed since", EXEC], "event": forbidden_exec(2, "eve", "ns-a")})
    result = processor.process([Message(topic, 0, 7, b"k", gone + b"\n" + both, Ref(topic, 0))], None)

    assert [(d.reason, d.offset, d.index, d.original) for d in result.dead_letters] == [
        ("unknown_correlation", 7, 0, gone), ("unknown_correlation", 7, 1, both)]
    assert "'Removed since' is not loaded" in result.dead_letters[0].detail
    assert "changed after it was forwarded" in result.dead_letters[0].detail
    # the correlation it also names, still regrouped here, took the event
    (stored,) = [value for key, value in table.items() if key == f'{EXEC}\x1f["eve"]']
    assert [entry["id"] for entry in orjson.loads(stored.partition(b"|")[2])["wx"]] == ["a2"]  # its newest counted events (pipeline/correlation/window.py)


def test_an_envelope_for_a_correlation_loaded_but_not_regrouped_says_so():
    settings, processor, _ = worker(2)
    topic = settings.regroup_topic
    line = orjson.dumps({"source": "syscall", "correlations": ["Drop and execute"], "event": {"evt.type": "execve"}})
    result = processor.process([Message(topic, 1, 3, None, line, Ref(topic, 1))], None)
    (letter,) = result.dead_letters
    assert (letter.reason, letter.index) == ("unknown_correlation", 0)
    assert "'Drop and execute' is loaded but not regrouped" in letter.detail and result.alerts == []


def test_the_dead_letter_reason_is_counted_from_the_start():
    from pipeline import deadletter as dl
    from pipeline.metrics import exposition

    assert dl.UNKNOWN_CORRELATION in dl.REASONS
    assert b'peregrine_dead_letters_total{reason="unknown_correlation"}' in exposition()


def test_a_batchs_regrouped_events_are_evaluated_in_event_time_across_groups():
    """A worker forwards a batch's events group by group. Two users whose groups share a regroup
    partition: the one with later events written first moved the partition's clock, and the
    other's 20 forbidden execs, minutes older, were all late (the atelier's replay lost its
    alert so). Read back in one batch, they are evaluated in event time."""
    settings, processor, _ = worker(2)
    users = [f"user-{i}" for i in range(40)]
    early, late = next((a, b) for a in users for b in users if a != b
                       and kafka_partition(f'{EXEC}\x1f["{a}"]'.encode(), 2) == kafka_partition(f'{EXEC}\x1f["{b}"]'.encode(), 2))
    partition = kafka_partition(f'{EXEC}\x1f["{early}"]'.encode(), 2)
    later = [dict(forbidden_exec(n, late, "ns-a"), auditID=f"l{n}", stageTimestamp=f"2026-11-30T10:30:{n:02d}Z") for n in range(3)]
    older = [dict(forbidden_exec(n, early, "ns-b"), auditID=f"e{n}") for n in range(20)]
    topic = settings.regroup_topic

    def message(offset: int, user: str, events: list[dict]) -> Message:
        lines = b"\n".join(orjson.dumps({"source": "k8s_audit", "correlations": [EXEC], "event": e}) for e in events)
        key = f'{EXEC}\x1f["{user}"]'.encode()
        return Message(topic, partition, offset, key, lines, Ref(topic, partition))

    result = processor.process([message(0, late, later), message(1, early, older)], None)
    assert [(a.rule, a.output_fields["ka.user.name"]) for _, a in result.alerts] == [(EXEC, early)]
    assert processor.scanner.correlator.stats.late == 0
