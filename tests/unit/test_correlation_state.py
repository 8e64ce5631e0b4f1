"""Event time, lateness, expiry, throttling, restarts from serialised state, and
bounded memory under any input (property test)."""

from __future__ import annotations

import json

from correlation_helpers import S, evaluator, events, load_text, peregrine_correlations, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.correlation import CorrelationLimits

_, CORRELATIONS = peregrine_correlations()
DROP = "Drop and execute"

TOY = """\
- correlation: ABC
  type: sequence
  by: container.id
  maxspan: 10s
  steps:
    - condition: evt.type = execve and proc.name = a
      bind: {pid: proc.pid}
    - condition: evt.type = execve and proc.name = b
      match: {proc.ppid: pid}
    - condition: evt.type = execve and proc.name = c
  until: evt.type = procexit and proc.name = z
  throttle: 30s
  output: "%step.step1.proc.pid %corr.group"
  priority: INFO
- correlation: Opens
  type: threshold
  condition: evt.type = openat
  window: 5s
  count: 4
  output: "%corr.count"
  priority: INFO
- correlation: Files
  type: distinct
  condition: evt.type = openat
  field: fd.name
  window: 5s
  count: 3
  output: "%corr.distinct"
  priority: INFO
"""
_, TOY_CORRELATIONS = load_text(TOY)


def ev(t: float, name: str, container: str = "c1", evt_type: str = "execve", **more):
    event = {"evt.time": int(t * S), "evt.type": evt_type, "evt.dir": "<", "proc.name": name, "container.id": container}
    event.update(more)
    return event


def abc(t0: float, container: str = "c1", pid: int = 7):
    return [ev(t0, "a", container, **{"proc.pid": pid}), ev(t0 + 1, "b", container, **{"proc.ppid": pid}), ev(t0 + 2, "c", container)]


def test_bound_value_must_match_and_until_discards():
    toy = lambda: evaluator(TOY_CORRELATIONS, only="ABC")  # noqa: E731
    assert len(run(toy(), abc(0))) == 1
    wrong_parent = [ev(0, "a", **{"proc.pid": 7}), ev(1, "b", **{"proc.ppid": 8}), ev(2, "c")]
    assert run(toy(), wrong_parent) == []
    stopped = abc(0)
    stopped.insert(2, ev(1.5, "z", evt_type="procexit"))
    assert run(toy(), stopped) == []


def test_maxspan_is_measured_from_the_first_step():
    slow = [ev(0, "a", **{"proc.pid": 7}), ev(9, "b", **{"proc.ppid": 7}), ev(10.5, "c")]
    assert run(evaluator(TOY_CORRELATIONS, only="ABC"), slow) == []


def test_late_events_within_the_allowed_lateness_still_count_and_older_ones_are_ignored():
    limits = CorrelationLimits(allowed_lateness_ns=5 * S)
    other = ev(20, "x", "c2")
    a, b, c = abc(16)
    ev1 = evaluator(TOY_CORRELATIONS, limits, only="ABC")
    assert len(run(ev1, [a, other, b, c])) == 1  # a is 4s behind the newest: within lateness
    ev2 = evaluator(TOY_CORRELATIONS, limits, only="ABC")
    a, b, c = abc(10)
    assert run(ev2, [other, a, b, c]) == [] and ev2.stats.late == 3


def test_state_expires_on_event_time_not_wall_clock():
    ev1 = evaluator(TOY_CORRELATIONS, CorrelationLimits(allowed_lateness_ns=0))
    run(ev1, [ev(0, "a", "c1", **{"proc.pid": 1}), ev(0, "a", "c2", **{"proc.pid": 2}), ev(1, "x", evt_type="openat", **{"fd.name": "/f"})])
    assert ev1.open_groups == 4  # two sequences, one threshold, one distinct group
    run(ev1, [ev(5.5, "x", "c3", evt_type="close")])
    assert ev1.open_groups == 4  # every window still open at 5.5s
    run(ev1, [ev(10.5, "x", "c3", evt_type="close")])  # matches nothing, but moves event time on
    assert ev1.open_groups == 0 and ev1.stats.expired_groups == 4 and ev1.store == {}


def test_throttling_keeps_one_alert_per_rule_and_group_per_period_with_a_suppressed_count():
    ev1 = evaluator(TOY_CORRELATIONS, only="ABC")
    alerts = run(ev1, abc(0) + abc(5) + abc(10) + abc(40) + abc(41, "c2"))
    assert [(a.group["container.id"], a.time // S, a.suppressed) for a in alerts] == [("c1", 2, 0), ("c1", 42, 2), ("c2", 43, 0)]
    assert ev1.stats.suppressed == 2


def test_a_restarted_evaluator_resumes_from_serialised_state_and_fires():
    stream = events("drop_execute.jsonl")
    first = evaluator(CORRELATIONS, only=DROP)
    assert run(first, stream[:6]) == []
    saved = json.loads(json.dumps(first.store))  # what a changelog-backed table gives back
    second = evaluator(CORRELATIONS, store=saved, only=DROP)
    assert second.open_groups == 1
    alerts = run(second, stream[6:])
    assert len(alerts) == 1 and [e.id for e in alerts[0].events] == [2000, 2002, 2005, 2007]


def test_max_groups_evicts_the_least_recently_touched_group():
    ev1 = evaluator(TOY_CORRELATIONS, CorrelationLimits(max_groups=2), only="ABC")
    run(ev1, [ev(0, "a", "c1", **{"proc.pid": 1}), ev(0.1, "a", "c2", **{"proc.pid": 1}), ev(0.2, "a", "c3", **{"proc.pid": 1})])
    assert ev1.open_groups == 2 and ev1.stats.evicted_groups == 1
    assert run(ev1, [ev(1, "b", "c1", **{"proc.ppid": 1}), ev(2, "c", "c1")]) == []  # c1 was evicted
    assert len(run(ev1, [ev(1, "b", "c3", **{"proc.ppid": 1}), ev(2, "c", "c3")])) == 1


NAMES = st.sampled_from(["a", "b", "c", "z", "x"])
TYPES = st.sampled_from(["execve", "execve", "openat", "procexit", "connect"])
EVENT = st.builds(
    lambda dt, name, etype, container, pid, ppid, fname: (dt, ev(0, name, container, etype, **{"proc.pid": pid, "proc.ppid": ppid, "fd.name": fname})),
    st.integers(min_value=-3 * S, max_value=4 * S),
    NAMES, TYPES, st.sampled_from([f"c{i}" for i in range(12)]),
    st.integers(1, 4), st.integers(1, 4), st.sampled_from([f"/f{i}" for i in range(6)]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, max_size=300), st.integers(1, 8), st.integers(1, 3))
def test_random_streams_never_grow_state_beyond_the_limits(stream, max_groups, max_partials):
    limits = CorrelationLimits(max_groups=max_groups, max_partials_per_group=max_partials, allowed_lateness_ns=2 * S)
    ev1 = evaluator(TOY_CORRELATIONS, limits)
    now = 100 * S
    for dt, event in stream:
        now = max(0, now + dt)
        event["evt.time"] = now
        ev1.process(event, "syscall")
        assert len(ev1.store) == ev1.open_groups <= max_groups
        for state in ev1.store.values():
            assert len(state.get("p", ())) <= max_partials
            assert len(state.get("t", ())) <= 4 and len(state.get("v", {})) <= 3
        assert set(ev1.index.keys()) == set(ev1.store)
    json.dumps(ev1.store)  # always serialisable
    ev1.expire(now + 3600 * S)
    assert ev1.store == {} and ev1.open_groups == 0


def test_an_until_with_match_discards_only_the_partials_it_names():
    text = """\
- correlation: Started then connected
  type: sequence
  maxspan: 10s
  steps:
    - condition: evt.type = execve and proc.name = a
      bind: {pid: proc.pid}
    - condition: evt.type = connect and proc.name = a
      match: {proc.pid: pid}
  until:
    condition: evt.type = procexit
    match: {proc.pid: pid}
  output: "%step.step1.proc.pid"
  priority: INFO
"""
    _, correlations = load_text(text)
    stream = [
        ev(0, "a", **{"proc.pid": 1}), ev(0.5, "a", **{"proc.pid": 2}),
        ev(1, "a", evt_type="procexit", **{"proc.pid": 1}),
        ev(2, "a", evt_type="connect", **{"proc.pid": 1}), ev(3, "a", evt_type="connect", **{"proc.pid": 2}),
    ]
    alerts = run(evaluator(correlations), stream)
    assert [a.output for a in alerts] == ["2"]


class JsonStore(dict):
    """Like a changelog-backed table: values go through JSON on every write, and a read
    returns a fresh copy, so a change that is not written back with ``store[key] = v`` is lost."""

    def __setitem__(self, key, value):
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key):
        return json.loads(super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        return [(key, self[key]) for key in self.keys()]

    def values(self):
        return [self[key] for key in self.keys()]


def test_every_change_is_written_back_so_a_changelog_table_sees_it():
    streams = [("drop_execute.jsonl", "syscall"), ("log4shell.jsonl", "syscall"), ("fanout.jsonl", "syscall"), ("forbidden_exec.jsonl", "k8s_audit")]
    for name, source in streams:
        plain = run(evaluator(CORRELATIONS), events(name), source)
        through_json = run(evaluator(CORRELATIONS, store=JsonStore()), events(name), source)
        assert [a.to_dict() for a in through_json] == [a.to_dict() for a in plain] and len(plain) == 1, name


def test_the_table_store_keeps_bytes_sets_the_current_event_and_gives_the_same_alerts():
    import contextvars

    from pipeline.correlation.table import TableCorrelationStore

    current = contextvars.ContextVar("current_event", default=None)
    seen: list = []

    class Table(dict):  # records which event was current at each write, as Faust would use it
        def __setitem__(self, key, value):
            assert isinstance(value, bytes)
            seen.append(current.get()())
            super().__setitem__(key, value)

    class Ref:
        pass

    table = Table()
    store = TableCorrelationStore(table, current)
    ref = Ref()
    store.bind(ref)
    stream = events("drop_execute.jsonl")
    assert run(evaluator(CORRELATIONS, store=store, only=DROP), stream[:6]) == []
    assert not seen  # held until the batch ends
    store.flush()
    assert len(seen) == 1 and seen[0] is ref and len(table) == 1  # the group changed six times, written once
    restarted_store = TableCorrelationStore(Table(table), current)  # what the changelog gives back
    restarted_store.bind(ref)
    restarted = evaluator(CORRELATIONS, store=restarted_store, only=DROP)
    assert restarted.open_groups == 1
    alerts = run(restarted, stream[6:])
    assert len(alerts) == 1 and [e.id for e in alerts[0].events] == [2000, 2002, 2005, 2007]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False),
                          st.lists(st.text(), max_size=3), st.sampled_from(['a"b', "a\\b", "é", "\x7f", "tab\t", "host:node-a"])),
                max_size=4))
def test_group_keys_are_the_json_text_changelogs_already_hold(values):
    """The fast path for plain strings and ints writes exactly what json.dumps wrote before it."""
    from pipeline.correlation.state import KEY_SEPARATOR, group_key, split_key

    key = group_key("Corr", tuple(values))
    assert key == "Corr" + KEY_SEPARATOR + json.dumps(values, separators=(",", ":"), default=str)
    assert split_key(key) == ("Corr", json.loads(json.dumps(values)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False)))
def test_plain_json_is_json_dumps_or_nothing(value):
    from pipeline.correlation.state import plain_json

    text = plain_json(value)
    assert text is None or text == json.dumps(value)
    assert (text is None) == (not (type(value) is int or (type(value) is str and json.dumps(value) == f'"{value}"'
                                                          and value.isprintable())))


def test_a_replayed_event_is_not_counted_twice_by_a_threshold():
    """At least once: after a crash or a rebalance the same events come again; a threshold counts
    each (id, time) once, so 3 events seen twice are not 4 (Opens: count 4)."""
    opens = [ev(t, "cat", evt_type="openat", **{"evt.num": 100 + t}) for t in range(3)]
    toy = evaluator(TOY_CORRELATIONS, only="Opens")
    assert run(toy, opens + opens) == []
    [alert] = run(toy, [ev(3, "cat", evt_type="openat", **{"evt.num": 103})])
    assert [e.id for e in alert.events] == [100, 101, 102, 103]
    # without an id of their own (an ordinal is given), events still count as before
    anonymous = evaluator(TOY_CORRELATIONS, only="Opens")
    assert len(run(anonymous, [ev(t, "cat", evt_type="openat") for t in (0, 0, 0, 0)])) == 1


def test_a_replayed_syscall_event_without_evt_num_is_known_by_its_process_and_type():
    """Without evt.num an event was given an ordinal, which a replay does not keep: a batch
    delivered again (after a crash or a rebalance) counted its events again and fired the
    threshold early, and a sequence completed again gave a second alert under another id."""
    opens = evaluator(TOY_CORRELATIONS, only="Opens")
    batch = [ev(10 + i, "cat", evt_type="openat", **{"proc.pid": 100 + i}) for i in range(3)]
    assert run(opens, batch) == [] and run(opens, batch) == []  # three events, delivered twice: not four
    fired = run(opens, [ev(14, "cat", evt_type="openat", **{"proc.pid": 200})])
    assert [a.count for a in fired] == [4]
    assert [e.id for e in fired[0].events] == ["100/openat", "101/openat", "102/openat", "200/openat"]

    seq = evaluator(TOY_CORRELATIONS, only="ABC")
    stream = abc(20, pid=9)
    first = run(seq, stream)
    assert len(first) == 1
    assert run(seq, stream[1:]) == []  # the last steps delivered again: the match is not made twice
    # two events of the same process and type at different times are two events
    assert run(opens, [ev(30 + i, "cat", evt_type="openat", **{"proc.pid": 300}) for i in range(4)])


def test_a_replay_reaching_back_over_several_alerts_counts_none_of_their_events_again():
    """Only the last alert's events used to be remembered: a worker killed after a batch that
    fired a threshold twice read the batch again, counted the first alert's events anew and
    fired a third time (the chaos test's regrouped threshold, 42 alerts for 40)."""
    opens = evaluator(TOY_CORRELATIONS, only="Opens")
    batch = [ev(10 + i / 10, "cat", evt_type="openat", **{"evt.num": i}) for i in range(12)]
    assert [a.count for a in run(opens, batch)] == [4, 4, 4]
    assert run(opens, batch) == []  # delivered again, from its start
    assert run(opens, batch[:6]) == []
    # a window after those alerts their events are forgotten: state stays bounded
    later = [ev(100 + i, "cat", evt_type="openat", **{"evt.num": 100 + i}) for i in range(4)]
    assert [a.count for a in run(opens, later)] == [4]
    (state,) = [value for key, value in opens.store.items()]
    assert state["fn"] == [[int(103 * S), 4]] and len(state["fh"]) == 4


def test_fired_digests_are_kept_up_to_a_bound():
    from pipeline.correlation import window

    state: dict = {}
    for alert in range(10):
        for i in range(4):
            window.add(state, alert * 10 + i, alert * 100 + i, {"id": i, "t": alert * 10 + i})
        window.fire(state, keep=16)
    assert [count for _, count in state["fn"]] == [4, 4, 4, 4] and len(state["fh"]) == 16
    assert window.counted(state, 900) and not window.counted(state, 500)
    assert [window.fired_kept(n) for n in (16, 1000, 10_000)] == [2048, 4000, 20_000]
    legacy = {"fh": [1, 2], "ft": 50}  # written when only the last alert's were kept
    assert window.forget_fired(legacy, 55, 10) == 60 and window.counted(legacy, 2)
    assert window.forget_fired(legacy, 61, 10) == 0 and legacy == {}
