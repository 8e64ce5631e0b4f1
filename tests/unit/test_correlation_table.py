"""TableCorrelationStore against a table that, like Faust's, places every write and
delete in the current event's partition (its changelog records the partition)."""

from __future__ import annotations

import contextvars

import pytest

from pipeline.correlation.table import TableCorrelationStore

CURRENT = contextvars.ContextVar("current_event", default=None)


class ChangelogTable(dict):
    """A dict whose writes and deletes log (key, partition, topic) of the current event."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: list[tuple[str, int, str, bool]] = []  # key, partition, topic, tombstone

    def _current(self):
        ref = CURRENT.get()
        if ref is None:
            raise RuntimeError("Cannot modify table outside of agent/stream.")
        return ref().message

    def __setitem__(self, key, value):
        assert isinstance(value, bytes)
        message = self._current()
        self.changelog.append((key, message.partition, message.topic, False))
        super().__setitem__(key, value)

    def pop(self, key, default=None):
        if key not in self:
            return default
        message = self._current()
        self.changelog.append((key, message.partition, message.topic, True))
        return super().pop(key)


class Event:
    def __init__(self, topic: str, partition: int) -> None:
        self.message = self
        self.topic = topic
        self.partition = partition


def store(table: ChangelogTable, owned=None) -> TableCorrelationStore:
    return TableCorrelationStore(table, CURRENT, partitions=2, topic="app-correlation-state-changelog", owned=owned)


def test_a_write_goes_to_the_events_partition_and_the_value_names_it():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("peregrine.events.syscall", 1))
    s["seq\x1f[\"c1\"]"] = {"p": [], "d": 5}
    s.flush()
    assert table.changelog == [("seq\x1f[\"c1\"]", 1, "app-correlation-state-changelog", False)]
    assert table["seq\x1f[\"c1\"]"].startswith(b"1|")
    assert s["seq\x1f[\"c1\"]"] == {"p": [], "d": 5}


def test_an_event_of_a_topic_with_more_partitions_writes_to_a_partition_the_table_has():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("peregrine.events.k8s_audit", 3))  # four audit partitions, a table of two
    s["thr\x1f[\"alice\"]"] = {"t": [], "d": 1}
    s.flush()
    assert table.changelog == [("thr\x1f[\"alice\"]", 1, "app-correlation-state-changelog", False)]


def test_a_group_deleted_while_another_partitions_event_is_bound_gets_its_tombstone_in_its_own_partition():
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("t", 0))
    s["a"] = {"d": 1}
    s.bind(Event("t", 1))
    s["b"] = {"d": 2}
    s.flush()
    assert s.pop("a") == {"d": 1}  # expiry, while partition 1's event is bound
    s.flush()
    assert table.changelog[-1] == ("a", 0, "app-correlation-state-changelog", True)
    assert s.pop("a", None) is None
    with pytest.raises(KeyError):
        del s["a"]
    del s["b"]
    s.flush()
    assert table.changelog[-1] == ("b", 1, "app-correlation-state-changelog", True) and not table


def test_items_are_the_owned_partitions_groups_only():
    table = ChangelogTable()
    owned = {0}
    s = store(table, owned=lambda: owned)
    for partition, key in ((0, "mine"), (1, "standby")):
        s.bind(Event("t", partition))
        s[key] = {"d": partition}
    s.bind(Event("t", 1))  # items() reads each group wherever it is, whatever is bound
    assert s.items() == [("mine", {"d": 0})]
    assert list(s) == ["mine"]
    owned.add(1)
    assert sorted(s) == ["mine", "standby"]


def test_values_without_a_partition_still_read():
    table = ChangelogTable()
    dict.__setitem__(table, "old", b'{"d": 3}')
    s = store(table)
    s.bind(Event("t", 0))
    assert s["old"] == {"d": 3} and s.items() == [("old", {"d": 3})]


def test_a_group_whose_state_would_not_fit_a_changelog_record_is_dropped_not_written():
    from pipeline.record_bounds import MAX_PART_BYTES

    table = ChangelogTable()
    s = store(table)
    s.bind(Event("peregrine.events.syscall", 0))
    key = "distinct\x1f[\"c1\"]"
    s[key] = {"v": ["a"], "d": 5}
    s.flush()
    s[key] = {"v": [f"/tmp/{n:06d}-" + "x" * 100 for n in range(6000)], "d": 5}  # ~700 KB
    s.flush()
    assert key not in table and s.get(key) is None and s.oversized == 1
    assert table.changelog[-1] == (key, 0, "app-correlation-state-changelog", True)  # its tombstone
    assert all(len(v) <= MAX_PART_BYTES for v in table.values())


def test_writes_are_held_until_flush_and_a_group_changed_by_many_events_is_logged_once():
    """A busy container's fan-out group changed at every connect event: each change was a
    changelog record. Now reads see the held state and flush() writes each group once, in
    the partition of its last write; a group created and deleted within the batch never
    reaches the changelog."""
    table = ChangelogTable()
    s = store(table)
    s.bind(Event("peregrine.events.syscall", 1))
    for n in range(50):
        state = s.get("fanout", None) or {"v": {}, "d": 0}
        state["v"][f"10.0.0.{n}"] = n
        s["fanout"] = state
    s["brief"] = {"d": 1}
    assert s.pop("brief") == {"d": 1} and s.get("brief") is None
    assert table.changelog == [] and len(s.get("fanout")["v"]) == 50
    s.flush()
    assert table.changelog == [("fanout", 1, "app-correlation-state-changelog", False)]
    assert s["fanout"]["v"]["10.0.0.49"] == 49  # read back from the table
    s.flush()
    assert len(table.changelog) == 1  # nothing held: nothing written


def test_items_and_len_see_the_held_writes():
    table = ChangelogTable()
    s = store(table, owned=lambda: {0, 1})
    s.bind(Event("t", 0))
    s["a"] = {"d": 1}
    assert len(s) == 1 and s.items() == [("a", {"d": 1})]
