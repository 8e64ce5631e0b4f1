"""Thresholds and distinct counts of thousands of events: their group state fits one changelog
record (the worker drops a group that does not, and it never fires), the alert lists the newest
events and counts them all, and groups written by an earlier Peregrine go on counting."""

from __future__ import annotations

import uuid

import pytest
from test_correlation_table import CURRENT, ChangelogTable, Event

from pipeline.correlation import CorrelationEvaluator
from pipeline.correlation import window
from pipeline.correlation.alerts import as_alert
from pipeline.correlation.parse import load_rules_and_correlations
from pipeline.correlation.table import TableCorrelationStore
from pipeline.fields import registry_for
from pipeline.json_bytes import json_bytes
from pipeline.record_bounds import MAX_PART_BYTES

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S


def evaluator(tmp_path, text: str, store=None) -> CorrelationEvaluator:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    _, correlations = load_rules_and_correlations(path)
    return CorrelationEvaluator(correlations, registry_for, store=store, wall_clock_ns=lambda: T0 + 7200 * S)


def forbidden_exec(i: int, at_ms: int, audit_id: str | None = None) -> dict:
    """A denied `kubectl exec` by one service account (an audit event as the API server writes it)."""
    seconds, ms = divmod(at_ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": "ResponseComplete",
        "auditID": audit_id or str(uuid.UUID(int=i)), "verb": "create",
        "requestURI": f"/api/v1/namespaces/ns{i % 7}/pods/web-{i}/exec?command=sh",
        "user": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:authenticated"]},
        "objectRef": {"resource": "pods", "namespace": f"ns{i % 7}", "name": f"web-{i}", "subresource": "exec"},
        "responseStatus": {"code": 403},
        "stageTimestamp": f"2023-11-14T22:{13 + minutes:02d}:{seconds:02d}.{ms:03d}000Z",
    }


THRESHOLD = """
- correlation: Denied exec storm
  type: threshold
  source: k8s_audit
  condition: ka.response.code = 403
  by: ka.user.name
  window: 1h
  count: {count}
  output: "%corr.count denied execs by %ka.user.name"
  priority: WARNING
"""

FANOUT = """
- correlation: Fan out
  type: distinct
  condition: evt.type = connect
  field: fd.sip
  by: container.id
  window: 1h
  count: {count}
  output: "%container.id reached %corr.distinct addresses"
  priority: NOTICE
"""


def table_store() -> tuple[ChangelogTable, TableCorrelationStore]:
    table = ChangelogTable()
    store = TableCorrelationStore(table, CURRENT, partitions=1, topic="app-correlation-state-changelog")
    store.bind(Event("peregrine.events.k8s_audit", 0))
    return table, store


def run_batches(ev: CorrelationEvaluator, store: TableCorrelationStore, table: ChangelogTable, events, source: str,
                batch: int = 500) -> tuple[list, int]:
    """The events in batches as the worker takes them (the store flushed after each); returns the
    alerts and the largest group record the table was given."""
    alerts, largest = [], 0
    for start in range(0, len(events), batch):
        for event in events[start:start + batch]:
            alerts.extend(ev.process(event, source))
        store.flush()
        largest = max([largest, *(len(value) for value in table.values())])
    return alerts, largest


def test_a_threshold_of_ten_thousand_fires_and_its_group_fits_one_changelog_record(tmp_path):
    """Before, every counted event kept its whole record (~250 bytes): a group of more than ~2000
    events outgrew the 512 KiB record, the worker dropped it at every batch, and it never fired."""
    table, store = table_store()
    ev = evaluator(tmp_path, THRESHOLD.format(count=10_000), store)
    # 10000 denied execs 100 ms apart fire once; 9999 more (the group's largest state: the
    # fired ids are kept a window beside a window one short of the count) fire nothing
    events = [forbidden_exec(i, i * 100) for i in range(19_999)]
    alerts, largest = run_batches(ev, store, table, events, "k8s_audit")
    assert store.oversized == 0
    assert largest <= MAX_PART_BYTES
    assert len(alerts) == 1
    alert = as_alert(alerts[0], "node")
    assert alert.message == "10000 denied execs by system:serviceaccount:ci:deployer"
    listed = alert.output_fields["corr.events"]
    assert [event["id"] for event in listed] == [str(uuid.UUID(int=i)) for i in range(10_000 - window.LISTED, 10_000)]
    assert alert.output_fields["corr.count"] == 10_000


def test_events_a_large_threshold_counted_do_not_count_again_when_replayed(tmp_path):
    table, store = table_store()
    ev = evaluator(tmp_path, THRESHOLD.format(count=3000), store)
    first = [forbidden_exec(i, i * 100) for i in range(3000)]
    alerts, _ = run_batches(ev, store, table, first, "k8s_audit")
    assert len(alerts) == 1
    replayed, _ = run_batches(ev, store, table, first, "k8s_audit")  # a crash before the commit
    assert replayed == []
    fresh = [forbidden_exec(i, i * 100) for i in range(3000, 6000)]
    again, _ = run_batches(ev, store, table, fresh, "k8s_audit")
    assert len(again) == 1


def test_a_distinct_count_of_ten_thousand_addresses_fits_one_changelog_record(tmp_path):
    table, store = table_store()
    ev = evaluator(tmp_path, FANOUT.format(count=10_000), store)
    events = [{"evt.type": "connect", "evt.dir": "<", "evt.num": i, "evt.time": T0 + i * MS, "container.id": "c0ffee123456",
               "fd.sip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "proc.name": "curl"} for i in range(19_999)]
    # the same addresses again meanwhile count once each
    events[5000:5000] = [dict(event, **{"evt.num": 100_000 + n, "evt.time": event["evt.time"] + 1}) for n, event
                         in enumerate(events[4990:5000])]
    alerts, largest = run_batches(ev, store, table, events, "syscall")
    assert store.oversized == 0 and largest <= MAX_PART_BYTES
    assert [alert.output for alert in alerts] == ["c0ffee123456 reached 10000 addresses"]
    assert len(alerts[0].events) == window.LISTED


def test_an_address_seen_again_moves_to_its_newest_sighting():
    state: dict = {}
    for n, (time, value) in enumerate([(10, 1), (20, 2), (30, 1)]):
        window.add(state, time, value, {"id": n, "t": time, "sum": "", "step": "x"}, distinct=True)
    assert window.prune(state, 1000, 10) == 2
    assert [record["id"] for record in state["wx"]] == [1, 2]
    assert window.newest(state) == 30
    # an older sighting of a value counted later changes nothing
    assert window.add(state, 5, 2, {"id": 9, "t": 5, "sum": "", "step": "x"}, distinct=True) is False
    assert window.prune(state, 1000, 10) == 2


def test_a_late_event_takes_its_place_in_time_and_the_window_ends_at_the_newest():
    state: dict = {}
    for n, time in enumerate([100, 300, 200, 50]):
        window.add(state, time, n, {"id": n, "t": time, "sum": "", "step": "x"})
    assert [state["wb"] + at for at in state["wt"]] == [50, 100, 200, 300]
    assert [record["t"] for record in state["wx"]] == [50, 100, 200, 300]
    assert window.prune(state, 200, 10) == 2  # the window (200] ends at 300: 100 and 50 left it
    assert [record["t"] for record in state["wx"]] == [200, 300]
    assert window.prune(state, 1000, 1) == 1  # at most ``count``: the newest kept
    assert [record["id"] for record in state["wx"]] == [1]


def test_a_long_lived_group_keeps_its_times_small():
    state: dict = {}
    for n in range(1000):
        window.add(state, T0 + n * S, n, {"id": n, "t": T0 + n * S, "sum": "", "step": "x"})
        window.prune(state, 60 * S, 100)
    assert window.newest(state) == T0 + 999 * S
    assert max(state["wt"]) < 2 * 60 * S and state["wb"] + state["wt"][0] == T0 + 940 * S


@pytest.mark.parametrize("count", [3, 4])
def test_a_group_written_by_an_earlier_peregrine_goes_on_counting(tmp_path, count):
    """Threshold state used to be a record per event (``"t"``) and the ids of the last alert's
    events (``"f"``): a worker upgraded over such a changelog counts on from it."""
    ev = evaluator(tmp_path, THRESHOLD.format(count=count), {})
    key = ev.correlations[0].name + '\x1f["system:serviceaccount:ci:deployer"]'
    earlier = [forbidden_exec(i, i * 100) for i in range(4)]
    old_time = [ev_time(ev, event) for event in earlier]
    ev._store[key] = {
        "t": [{"id": earlier[i]["auditID"], "t": old_time[i], "sum": "old", "step": "step1"} for i in (2, 3)],
        "f": [{"id": earlier[i]["auditID"], "t": old_time[i]} for i in (0, 1)],
        "a": old_time[1], "s": 0, "d": old_time[3] + 3600 * S,
    }
    ev.reindex()
    assert ev.process(earlier[0], "k8s_audit") == []  # the last alert counted it
    assert ev.process(earlier[3], "k8s_audit") == []  # counted already
    alerts = ev.process(forbidden_exec(4, 400), "k8s_audit")
    if count == 3:
        assert [event.summary for event in alerts[0].events][:2] == ["old", "old"]
        assert alerts[0].output.startswith("3 denied execs")
    else:
        assert alerts == []
        assert ev.process(forbidden_exec(5, 500), "k8s_audit")[0].output.startswith("4 denied execs")


def ev_time(ev: CorrelationEvaluator, event: dict) -> int:
    return registry_for("k8s_audit").bind("evt.time").extract(event)
