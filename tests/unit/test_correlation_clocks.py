"""Event time per input partition and source: the worker's evaluator over a
TableCorrelationStore keeps one clock per (table partition, source), so a
partition (or the other agent) that is ahead never makes another partition's
events late nor expires its groups; file mode keeps one clock for all."""

from __future__ import annotations

import contextvars
import json

from correlation_helpers import S, evaluator, events, peregrine_correlations, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.correlation import CorrelationLimits
from pipeline.correlation.table import TableCorrelationStore

_, CORRELATIONS = peregrine_correlations()
DROP = "Drop and execute"
FANOUT = "Container fans out to many IPs"
HOUR = 3600 * S

CURRENT = contextvars.ContextVar("current_event", default=None)


class Table(dict):
    """Faust's table as the store sees it: writes only while an event is current."""

    def __setitem__(self, key, value):
        assert isinstance(value, bytes) and CURRENT.get() is not None
        super().__setitem__(key, value)

    def pop(self, key, default=None):
        assert CURRENT.get() is not None
        return super().pop(key, default)


class Message:
    def __init__(self, partition: int) -> None:
        self.message = self
        self.topic = "peregrine.events.syscall"
        self.partition = partition


def table_store(table: Table | None = None) -> TableCorrelationStore:
    return TableCorrelationStore(Table() if table is None else table, CURRENT, partitions=2, topic="corr-changelog")


def shifted(stream: list[dict], by_ns: int, container: str | None = None) -> list[dict]:
    out = []
    for event in stream:
        event = dict(event, **{"evt.time": event["evt.time"] + by_ns})
        if container is not None and "container.id" in event:
            event["container.id"] = container
        out.append(event)
    return out


def on(store: TableCorrelationStore, partition: int, ev, stream, source: str = "syscall"):
    """``stream`` as the worker feeds it from ``partition``, as one batch: the store bound to
    each message, its changes flushed at the batch's end."""
    store.bind(Message(partition))
    alerts = run(ev, stream, source)
    store.flush()
    return alerts


def test_a_partition_processed_after_a_later_one_still_completes_its_matches():
    """The CI failure: partition 1's batch (an hour later) came first; partition 0's
    'Drop and execute' and fan-out were then older than the one shared watermark."""
    for name, stream in ((DROP, events("drop_execute.jsonl")), (FANOUT, events("fanout.jsonl"))):
        store = table_store()
        ev = evaluator(CORRELATIONS, store=store, only=name)
        later = on(store, 1, ev, shifted(stream, HOUR, "c-later"))
        earlier = on(store, 0, ev, stream)
        assert [a.rule for a in later] == [name] and [a.rule for a in earlier] == [name], name
        assert ev.stats.late == 0
        assert ev.clocks == {(1, "syscall"): stream[-1]["evt.time"] + HOUR, (0, "syscall"): stream[-1]["evt.time"]}


def test_the_same_partitions_later_events_still_make_its_older_events_late():
    store = table_store()
    ev = evaluator(CORRELATIONS, store=store, only=DROP)
    stream = events("drop_execute.jsonl")
    on(store, 0, ev, shifted(stream, HOUR, "c-later"))
    assert on(store, 0, ev, stream) == [] and ev.stats.late == len(stream)


def test_one_partitions_clock_never_expires_another_partitions_groups():
    store = table_store()
    ev = evaluator(CORRELATIONS, store=store, only=DROP)
    stream = events("drop_execute.jsonl")
    assert on(store, 0, ev, stream[:6]) == []
    assert ev.open_groups == 1
    moved_on = shifted(stream[:6], HOUR, "c-busy")
    assert on(store, 1, ev, moved_on) == []  # an hour later on partition 1: its own group opens
    assert ev.open_groups == 2 and ev.stats.expired_groups == 0
    assert ev.expire() == 0  # each clock's own watermark: neither group is over
    alerts = on(store, 0, ev, stream[6:])
    assert len(alerts) == 1 and [e.id for e in alerts[0].events] == [2000, 2002, 2005, 2007]
    # partition 1's clock does expire partition 1's groups
    on(store, 1, ev, [dict(moved_on[0], **{"evt.time": moved_on[0]["evt.time"] + HOUR, "evt.type": "close"})])
    assert ev.stats.expired_groups == 1 and all(not key.endswith('"c-busy"]') for key in store.table)


def test_the_other_agent_in_the_same_partition_keeps_its_own_clock():
    """Audit events an hour ahead, bound to the same table partition, make no syscall event late."""
    store = table_store()
    ev = evaluator(CORRELATIONS, store=store)
    audit = shifted(events("forbidden_exec.jsonl"), HOUR)
    assert [a.rule for a in on(store, 0, ev, audit, "k8s_audit")]
    assert len(on(store, 0, ev, events("drop_execute.jsonl"))) == 1 and ev.stats.late == 0


def test_a_restart_rebuilds_each_partitions_clock_from_its_own_groups():
    table = Table()
    store = table_store(table)
    first = evaluator(CORRELATIONS, store=store, only=DROP)
    stream = events("drop_execute.jsonl")
    on(store, 0, first, stream[:6])
    on(store, 1, first, shifted(stream[:6], HOUR, "c-busy"))
    restarted_store = table_store(Table(table))  # the changelog gives every group back, with its partition
    restarted = evaluator(CORRELATIONS, store=restarted_store, only=DROP)
    assert restarted.open_groups == 2
    assert restarted.clocks == {(0, "syscall"): stream[5]["evt.time"], (1, "syscall"): stream[5]["evt.time"] + HOUR}
    on(restarted_store, 1, restarted, shifted(stream[6:7], HOUR, "c-busy"))
    assert restarted.open_groups == 2  # partition 1 moving on expires nothing of partition 0
    alerts = on(restarted_store, 0, restarted, stream[6:])
    assert len(alerts) == 1 and [e.id for e in alerts[0].events] == [2000, 2002, 2005, 2007]


def test_reindex_keeps_a_running_clock_and_drops_groups_of_correlations_no_longer_run():
    store = table_store()
    ev = evaluator(CORRELATIONS, store=store, only=DROP)
    stream = events("drop_execute.jsonl")
    on(store, 0, ev, stream)  # the match completed: partition 0's clock is at the last event
    on(store, 0, ev, shifted(stream[:1], 3 * S, "c2"))  # a new partial, 4s behind the clock: within the lateness
    store.bind(Message(0))
    store['Removed rule\x1f["x"]'] = {"p": [], "a": None, "s": 0, "d": 10 * HOUR}
    ev.reindex()
    store.flush()  # the next batch's end
    assert ev.clocks[(0, "syscall")] == stream[-1]["evt.time"]  # not rewound to the partial's time
    assert ev.open_groups == 1 and 'Removed rule\x1f["x"]' not in store.table


def test_file_mode_keeps_one_clock_for_all_inputs():
    ev = evaluator(CORRELATIONS, only=DROP)
    stream = events("drop_execute.jsonl")
    run(ev, shifted(stream, HOUR, "c-later"))
    assert run(ev, stream) == [] and ev.stats.late == len(stream) and list(ev.clocks) == [None]


NAMES = st.sampled_from(["bash", "curl", "chmod", ".x", "sh"])
EVENT = st.builds(
    lambda dt, partition, name, etype, container: (dt, partition, {
        "evt.type": etype, "evt.dir": "<", "proc.name": name, "container.id": container,
        "proc.exepath": f"/tmp/{name}", "fd.name": f"/tmp/{name}", "evt.arg.flags": "O_CREAT", "fd.sip": f"10.0.0.{len(name)}",
        "fd.l4proto": "tcp", "fd.sport": 22}),
    st.integers(min_value=-3 * S, max_value=4 * S), st.integers(0, 1), NAMES,
    st.sampled_from(["execve", "openat", "connect", "chmod", "procexit"]), st.sampled_from([f"c{i}" for i in range(8)]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, max_size=200), st.integers(1, 6), st.integers(1, 3))
def test_random_streams_over_two_partitions_never_grow_state_beyond_the_limits(stream, max_groups, max_partials):
    limits = CorrelationLimits(max_groups=max_groups, max_partials_per_group=max_partials, allowed_lateness_ns=2 * S)
    store = table_store()
    ev = evaluator(CORRELATIONS, limits, store=store)
    now = [100 * S, 100 * S + HOUR]  # partition 1 runs an hour ahead
    for dt, partition, event in stream:
        now[partition] = max(0, now[partition] + dt)
        event["evt.time"] = now[partition]
        on(store, partition, ev, [event])
        assert len(store.table) == ev.open_groups <= max_groups
        assert set(ev.index.keys()) == set(store.table)
        for _, state in store.items():
            assert len(state.get("p", ())) <= max_partials
            json.dumps(state)
    ev.expire(max(now) + 10 * HOUR)
    store.flush()
    assert not store.table and ev.open_groups == 0


def test_a_batch_replayed_over_its_flushed_state_completes_each_match_once_with_the_same_events():
    """A crash after a batch's flush but before its offsets were committed: the restarted worker
    gets the flushed groups back from the changelog and processes the batch's events again.
    Each match still completes once, from the same contributing events (so the same alert id)."""
    for name, stream, cut in ((DROP, events("drop_execute.jsonl"), 6), (FANOUT, events("fanout.jsonl"), 40)):
        alone = table_store()
        clean = [[e.id for e in a.events] for a in on(alone, 0, evaluator(CORRELATIONS, store=alone, only=name), stream)]
        table = Table()
        store = table_store(table)
        first = on(store, 0, evaluator(CORRELATIONS, store=store, only=name), stream[:cut])  # flushed, never committed
        restarted_store = table_store(Table(table))
        restarted = evaluator(CORRELATIONS, store=restarted_store, only=name)
        replayed = on(restarted_store, 0, restarted, stream[cut // 2:])  # from the last committed offset
        assert [[e.id for e in a.events] for a in first + replayed] == clean, name
        assert len(clean) == 1
