"""A correlation group whose stored state cannot be read (a changelog record corrupted, or
written in a shape this version does not know) is dropped and counted; the worker goes on.
It used to raise for every later event of the group (the batch dead-lettered each one, with its
rule alerts) and, in reindex, at every partition assignment (the worker stopped)."""

from __future__ import annotations

import orjson
import pytest
from correlation_helpers import S, evaluator, load_text, run
from test_correlation_table import CURRENT, ChangelogTable, Event

from pipeline.correlation.table import TableCorrelationStore

T0 = 1_700_000_000 * S

RULES = """
- correlation: Shell then write
  type: sequence
  by: container.id
  maxspan: 1m
  steps:
    - name: shell
      condition: evt.type = execve and proc.name = sh
    - name: write
      condition: evt.type = openat and evt.is_open_write = true
  output: "%container.id wrote %step.write.fd.name after a shell"
  priority: WARNING

- correlation: Three opens
  type: threshold
  condition: evt.type = openat
  by: container.id
  window: 1m
  count: 3
  output: "%corr.count opens in %container.id"
  priority: NOTICE
"""
SEQ, THR = 'Shell then write\x1f["c1"]', 'Three opens\x1f["c1"]'


def shell(n: int) -> dict:
    return {"evt.num": n, "evt.time": T0 + n * S, "container.id": "c1", "evt.type": "execve", "proc.name": "sh"}


def write(n: int) -> dict:
    return {"evt.num": n, "evt.time": T0 + n * S, "container.id": "c1", "evt.type": "openat", "evt.is_open_write": True,
            "fd.name": f"/tmp/{n}"}


@pytest.mark.parametrize("state", [
    {"p": {"n": 1}, "d": T0},  # partials a dict
    {"p": [{"n": 9, "f": T0, "l": T0, "e": [], "b": {}}], "d": T0},  # a step index past the last step
    {"p": [], "h": "x", "d": T0},  # held events a string
    {"p": [{"n": 1}], "d": T0},  # a partial without its times
])
def test_a_sequence_group_that_cannot_be_read_is_dropped_and_the_event_taken_afresh(state):
    ev = evaluator(load_text(RULES)[1])
    ev._store[SEQ] = state
    assert run(ev, [shell(1)]) == []
    assert ev.stats.corrupt_groups == 1
    assert [a.output for a in run(ev, [write(2)])] == ["c1 wrote /tmp/2 after a shell"]


@pytest.mark.parametrize("state", [
    {"wb": T0, "wt": "x", "wh": [], "wx": [], "d": T0},  # times a string
    {"wt": [0], "wh": [1], "d": T0},  # no base time
    {"fh": 5, "ft": "soon", "d": T0},  # fired digests an int
    {"t": [{"t": T0}], "d": T0},  # the old shape, an entry without its id
])
def test_a_threshold_group_that_cannot_be_read_is_dropped_and_counting_starts_again(state):
    ev = evaluator(load_text(RULES)[1])
    ev._store[THR] = state
    alerts = run(ev, [write(1), write(2), write(3)])
    assert ev.stats.corrupt_groups == 1
    assert [a.output for a in alerts if a.rule == "Three opens"] == ["3 opens in c1"]


def test_reindex_drops_groups_it_cannot_read_instead_of_raising():
    ev = evaluator(load_text(RULES)[1])
    ev._store.update({SEQ: {"p": [5], "d": T0}, THR: {"d": "tomorrow"}, 'Three opens\x1f["c2"]': {"wb": T0, "wt": [0], "wh": [1],
                                                                                                  "wx": [], "d": T0 + 60 * S}})
    ev.reindex()
    assert ev.stats.corrupt_groups == 2 and set(ev._store) == {'Three opens\x1f["c2"]'} and ev.open_groups == 1


def test_a_changelog_value_that_is_no_json_is_read_as_no_group():
    table = ChangelogTable()
    store = TableCorrelationStore(table, CURRENT, partitions=1, topic="app-correlation-state-changelog")
    ev = evaluator(load_text(RULES)[1], store=store)
    dict.__setitem__(table, THR, b"0|{not json")
    dict.__setitem__(table, SEQ, b"0|[1, 2]")
    ev.reindex()  # skips both: their groups are written again when they next change
    assert store.unreadable == 2 and ev.open_groups == 0
    store.bind(Event("peregrine.events.syscall", 0))
    alerts = run(ev, [shell(1), write(2), write(3), write(4)])
    store.flush()
    assert sorted(a.rule for a in alerts) == ["Shell then write", "Three opens"]
    # written afresh: the threshold keeps the digests of the events it fired on, the completed
    # sequence left nothing
    assert len(orjson.loads(table[THR].partition(b"|")[2])["fh"]) == 3 and SEQ not in table
