"""A batch's correlation state reaches the table (its changelog) only once the batch's alerts
are delivered (TableCorrelationStore.seal / commit / discard).

Written before delivery, a worker that died (or was stopped while OpenSearch was away) between
the two came back to a group that had already fired: the replayed batch counted its events as
seen and gave no alert, and the alert of the first run was never stored."""

from __future__ import annotations

from pathlib import Path

from test_correlation_table import CURRENT, ChangelogTable, Event, store

from pipeline.correlation.table import BatchWrites
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
KEY = "seq\x1f[\"c1\"]"


def test_sealed_writes_are_read_back_but_reach_the_table_only_when_committed():
    table = ChangelogTable()
    s = store(table)
    writes = s.begin()
    s.bind(Event("syscall", 1), writes)
    s[KEY] = {"p": [1], "d": 5}
    layer = s.seal(writes)
    assert writes == {} and table == {} and table.changelog == []
    assert s.get(KEY) == {"p": [1], "d": 5}  # the next batch sees it
    assert [key for key, _ in s.items()] == [KEY]
    s.commit(layer)
    assert table.changelog == [(KEY, 1, "app-correlation-state-changelog", False)]
    assert s.get(KEY) == {"p": [1], "d": 5}


def test_a_discarded_batch_leaves_the_state_it_started_from():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("syscall", 0))
    s[KEY] = {"p": [1], "d": 5}
    s.flush()  # delivered earlier
    writes = s.begin()
    s.bind(Event("syscall", 0), writes)
    s[KEY] = {"p": [1, 2], "d": 6}
    s.pop("other", None)
    s.discard(s.seal(writes))
    assert s.get(KEY) == {"p": [1], "d": 5}
    assert [change[0] for change in table.changelog] == [KEY]


def test_layers_stack_a_delete_hides_an_older_pending_write_and_commits_in_order():
    table = ChangelogTable()
    s = store(table)
    first = s.begin()
    s.bind(Event("syscall", 1), first)
    s[KEY] = {"n": 1}
    one = s.seal(first)
    second = s.begin()
    s.bind(Event("syscall", 1), second)
    assert s.pop(KEY, None) == {"n": 1}  # read from the pending layer
    two = s.seal(second)
    assert s.get(KEY) is None and len(s) == 0 and s.items() == []
    s.commit(one)
    s.commit(two)
    assert table == {} and [(k, tomb) for k, _, _, tomb in table.changelog] == [(KEY, False), (KEY, True)]


def test_changes_between_batches_go_with_the_next_batch():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("syscall", 1))
    s[KEY] = {"n": 1}
    s.flush()
    s.bind(None)
    s.pop(KEY)  # e.g. a reindex dropping an orphaned group: the store's own change
    writes = s.begin()
    assert isinstance(writes, BatchWrites) and KEY in writes
    s.bind(Event("syscall", 0), writes)
    s.commit(s.seal(writes))
    assert table == {} and table.changelog[-1] == (KEY, 1, "app-correlation-state-changelog", True)
    s.bind(Event("syscall", 1))  # after a seal the store holds its own changes again
    s[KEY] = {"n": 2}
    s.flush()
    assert table[KEY].endswith(b'{"n":2}')


def drop_execute_worker():
    from pipeline.correlation.table import TableCorrelationStore
    from pipeline.stream.delivery import build_processor

    processor = build_processor(PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "1", "PEREGRINE_CONFIG_AUDIT": "false"}))
    table = ChangelogTable()
    processor.use_correlation_store(TableCorrelationStore(table, CURRENT, partitions=1, topic="changelog"))
    lines = (ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl").read_bytes().splitlines()
    messages = [Message("peregrine.events.syscall", 0, i, b"4f2a9c1d7e3b", line, Event("peregrine.events.syscall", 0))
                for i, line in enumerate(lines)]
    return processor, table, messages


def run(processor, messages):
    steps = processor.steps(messages, DictStateStore())
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def test_a_batch_replayed_after_its_delivery_was_given_up_fires_its_alert_again_with_the_same_id():
    processor, table, messages = drop_execute_worker()
    store = processor.correlation_store
    first = run(processor, messages[:6])  # three of the four steps: delivered
    store.commit(first.correlation_writes)
    assert table  # the open sequence is in the changelog
    cut = run(processor, messages[6:])  # the last step: the match completes
    assert [a.rule for _, a in cut.alerts] == ["Drop and execute"]
    assert len(table.changelog) == 1  # its state change waits for the delivery
    store.discard(cut.correlation_writes)  # never delivered (a kill, a stop while OpenSearch is away)
    processor.scanner.correlator.reindex()
    replayed = run(processor, messages[6:])
    assert [(a.rule, a.uuid) for _, a in replayed.alerts] == [(a.rule, a.uuid) for _, a in cut.alerts]
    store.commit(replayed.correlation_writes)
    assert table == {}  # the completed match leaves no state behind
    # a batch replayed after its delivery (the offsets not committed yet) is counted once: no second alert
    again = run(processor, messages[6:])
    assert again.alerts == []


def test_giving_up_an_input_partition_drops_only_what_its_messages_changed():
    """Table partition 1 takes both syscall partition 1's groups and regroup partition 1's:
    giving up the syscall partition's messages must keep the regroup partition's changes (its
    messages are delivered and committed; dropped, their counts would be lost)."""
    table = ChangelogTable()
    s = store(table)
    writes = s.begin()
    s.bind(Event("syscall", 1), writes)
    s["seq\x1f[\"c1\"]"] = {"n": 1}
    s.bind(Event("syscall.by-group", 1), writes)
    s["thr\x1f[\"bash\"]"] = {"n": 2}
    layer = s.seal(writes)
    s.give_up({("syscall", 1)})
    s.commit(layer)
    assert list(table) == ["thr\x1f[\"bash\"]"]


def test_after_a_batch_that_changed_nothing_the_store_holds_its_own_changes_again():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("syscall", 1))
    s[KEY] = {"n": 1}
    s.flush()
    writes = s.begin()
    s.bind(Event("syscall", 1), writes)
    assert s.seal(writes) is None  # nothing changed
    s.pop(KEY)  # between batches (a reindex dropping the group)
    s.flush()
    assert table == {}
