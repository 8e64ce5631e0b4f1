"""The process-tree state is bounded: exited processes expire, a tree keeps at most
max_processes (least recently seen out first), idle containers expire, and at most
max_containers trees are kept (least recently seen container out first)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.errors import ConfigError
from pipeline.state.containers import IDLE, OVER_LIMIT, ContainerIndex, ContainerLimits
from pipeline.state.process_tree import ProcessTree, TreeLimits
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "peregrine.events.syscall"


def exe(pid, ppid, name, t, cid="c"):
    return {"evt.type": "execve", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "proc.ppid": ppid,
            "proc.name": name, "proc.cmdline": name, "container.id": cid}


def test_an_exited_process_expires_after_the_ttl_of_event_time():
    tree = ProcessTree(TreeLimits(max_processes=100, exited_ttl_ns=1_000))
    tree.update(exe(10, 1, "sh", 100))
    tree.update(exe(11, 1, "sleep", 100))
    assert tree.update({"evt.type": "procexit", "evt.time": 200, "proc.pid": 10}) is True
    tree.update(exe(12, 1, "ls", 1_100))
    assert tree.expire() == 0 and tree.get(10) is not None  # 900 ns after its exit: still there
    tree.update(exe(13, 1, "ls", 1_201))
    assert tree.expire() == 1 and tree.get(10) is None and tree.get(11) is not None


def test_a_process_seen_again_outlives_one_that_was_not():
    tree = ProcessTree(TreeLimits(max_processes=3))
    for pid in (1, 2, 3):
        tree.update(exe(pid, 0, f"p{pid}", pid))
    assert tree.update({"evt.type": "read", "evt.time": 10, "proc.pid": 1, "proc.name": "p1"}) is False  # a touch
    tree.update(exe(4, 0, "p4", 11))
    assert tree.get(2) is None and [tree.get(p) is not None for p in (1, 3, 4)] == [True] * 3
    assert len(tree) == 3


def test_a_touch_is_not_a_change_to_write_but_an_exec_or_exit_is():
    tree = ProcessTree()
    assert tree.update(exe(5, 1, "sh", 1)) is True
    assert tree.update({"evt.type": "openat", "evt.time": 2, "proc.pid": 5, "proc.name": "sh"}) is False
    assert tree.update(exe(5, 1, "ls", 3)) is True
    assert tree.update({"evt.type": "procexit", "evt.time": 4, "proc.pid": 5}) is True
    assert tree.update({"evt.type": "procexit", "evt.time": 5, "proc.pid": 5}) is False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_idle_containers_expire_and_the_count_is_bounded_least_recent_first():
    clock = Clock()
    index = ContainerIndex(ContainerLimits(max_containers=3, idle_ttl_s=100), clock)
    for n, cid in enumerate(["a", "b", "c"]):
        clock.now = n
        index.touch(cid, partition=n % 2)
    clock.now = 3
    index.touch("a", 0)  # a is now the most recent
    index.touch("d", 1)
    assert [(e.container_id, e.reason) for e in index.evictions()] == [("b", OVER_LIMIT)]
    clock.now = 102.5  # c (seen at 2) has been idle for 100.5 s; a and d (3) for 99.5 s
    assert [(e.container_id, e.partition, e.reason) for e in index.evictions()] == [("c", 0, IDLE)]
    clock.now = 104
    assert sorted(e.container_id for e in index.evictions()) == ["a", "d"]
    assert len(index) == 0


def test_containers_of_partitions_no_longer_owned_are_forgotten_not_evicted():
    index = ContainerIndex(ContainerLimits(max_containers=10, idle_ttl_s=10), Clock())
    index.touch("x", 0)
    index.touch("y", 1)
    assert index.retain({1}) == ["x"]
    assert "x" not in index and "y" in index


class DictStore(DictStateStore):
    """Remembers the deletes (tombstones the worker would write)."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[tuple[str, int]] = []

    def delete(self, cid, partition):
        self.deleted.append((cid, partition))
        super().delete(cid, partition)


@pytest.fixture
def make_processor():
    from pipeline.stream.delivery import build_processor

    def make(**env: str):
        base = {"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"),
                "PEREGRINE_PARTITIONS": "1"}
        return build_processor(PipelineSettings.from_env(base | env))

    return make


def batch(*events, offset=0):
    return [Message(TOPIC, 0, offset + i, e["container.id"].encode(), orjson.dumps(e)) for i, e in enumerate(events)]


def test_the_worker_deletes_the_least_recently_seen_containers_tree_past_max_containers(make_processor):
    processor = make_processor(PEREGRINE_MAX_CONTAINERS="2")
    store = DictStore()
    processor.process(batch(exe(10, 1, "sh", 1, "c1"), exe(10, 1, "sh", 2, "c2")), store)
    processor.process(batch(exe(11, 10, "ls", 3, "c1"), offset=2), store)  # c1 seen again
    result = processor.process(batch(exe(10, 1, "sh", 4, "c3"), offset=3), store)
    assert result.evicted == 1 and store.deleted == [("c2", 0)]
    assert set(store) == {"c1", "c3"}
    # c2's tree is gone: its next event starts a new tree, without the old parent
    again = processor.process(batch({"evt.type": "openat", "evt.time": 5, "proc.pid": 12, "proc.ppid": 10,
                                     "container.id": "c2", "proc.name": "cat"}, offset=4), store)
    assert again.enriched == 0


def test_the_worker_deletes_idle_containers_trees(make_processor):
    processor = make_processor(PEREGRINE_IDLE_CONTAINER_TTL_S="60")
    clock = Clock()
    processor.containers.clock = clock
    store = DictStore()
    processor.process(batch(exe(10, 1, "sh", 1, "old"), exe(10, 1, "sh", 1, "busy")), store)
    clock.now = 59
    processor.process(batch(exe(11, 10, "ls", 2, "busy"), offset=2), store)
    clock.now = 61
    result = processor.process(batch(exe(12, 10, "ls", 3, "busy"), offset=3), store)
    assert store.deleted == [("old", 0)] and result.evicted == 1 and set(store) == {"busy"}


def test_a_cached_tree_is_used_only_while_the_store_holds_what_the_worker_wrote(make_processor):
    processor = make_processor()
    store = DictStore()
    processor.process(batch(exe(10, 1, "java", 1, "c")), store)
    child = {"evt.type": "openat", "evt.time": 2, "proc.pid": 11, "proc.ppid": 10, "container.id": "c", "proc.name": "x"}
    assert processor.process(batch(child, offset=1), store).enriched == 1
    # another worker (after a rebalance) replaced the tree: it must be read again, not the cached one
    other = ProcessTree()
    other.update(exe(10, 1, "python", 1))
    store["c"] = other.to_bytes()
    result = processor.process(batch(child | {"evt.time": 3}, offset=2), store)
    assert result.enriched == 1
    assert ProcessTree.from_bytes(store["c"]).get(10)[0] == "python"


@pytest.mark.parametrize("name,value", [("MAX_CONTAINERS", "0"), ("IDLE_CONTAINER_TTL_S", "0"), ("EXITED_TTL_S", "-1"),
                                        ("MAX_PROCESSES_PER_CONTAINER", "0"), ("MAX_CONTAINERS", "lots")])
def test_bounds_settings_are_checked(name, value):
    with pytest.raises(ConfigError, match=f"PEREGRINE_{name}"):
        PipelineSettings.from_env({f"PEREGRINE_{name}": value})


def test_bounds_settings_from_env():
    settings = PipelineSettings.from_env({"PEREGRINE_MAX_CONTAINERS": "500", "PEREGRINE_IDLE_CONTAINER_TTL_S": "90",
                                          "PEREGRINE_EXITED_TTL_S": "5", "PEREGRINE_MAX_PROCESSES_PER_CONTAINER": "64"})
    assert (settings.max_containers, settings.idle_container_ttl_s, settings.exited_ttl_s, settings.max_processes_per_container) == (500, 90.0, 5.0, 64)


def test_the_stored_tree_format_keeps_pids_as_text_keys():
    """The changelog's JSON is {"p": {"<pid>": [...]}, "t": ns}: pids are ints in memory only, so a
    tree written by an earlier worker loads, and one written now reads the same."""
    stored = b'{"p":{"10":["sh","/bin/sh","sh -c x",1,5,6,null],"x":["bad"]},"t":6}'
    tree = ProcessTree.from_bytes(stored)
    assert tree.get(10) == ["sh", "/bin/sh", "sh -c x", 1, 5, 6, None] and tree.get("10") == tree.get(10) and len(tree) == 1
    assert orjson.loads(tree.to_bytes()) == {"p": {"10": ["sh", "/bin/sh", "sh -c x", 1, 5, 6, None]}, "t": 6}
    assert tree.enrich({"proc.pid": 11, "proc.ppid": 10})["proc.pname"] == "sh"


def test_a_padded_command_line_is_kept_cut_and_its_children_see_the_cut():
    from pipeline.state.process_tree import MAX_STRING_BYTES, ProcessTree

    tree = ProcessTree()
    tree.update({"evt.type": "execve", "evt.time": 1, "proc.pid": 10, "proc.ppid": 1, "proc.name": "sh",
                 "proc.cmdline": "sh -c " + "A" * 100_000})
    child = tree.enrich({"evt.type": "open", "proc.pid": 11, "proc.ppid": 10, "proc.name": "cat"})
    kept = child["proc.pcmdline"]
    assert kept.startswith("sh -c AAAA") and kept.endswith(f"…[+{100_006 - MAX_STRING_BYTES} bytes]")
    assert len(kept.rpartition("…")[0].encode()) == MAX_STRING_BYTES


def test_a_tree_written_to_the_changelog_fits_one_kafka_record_and_keeps_the_recent_processes():
    from pipeline.state.process_tree import ProcessTree, TreeLimits
    from pipeline.stream.batch import BatchProcessor, DictStateStore, Message

    class NoRules:
        correlator = None

        def scan_event(self, event, source):
            return []

    limits = TreeLimits(max_processes=4096)
    processor = BatchProcessor(NoRules(), {"sys": "syscall"}, syscall_partitions=1, max_message_bytes=10 << 20, tree_limits=limits)
    events = [{"evt.type": "execve", "evt.time": 1000 + p, "proc.pid": 100 + p, "proc.ppid": 1, "proc.name": f"p{p}",
               "proc.cmdline": f"p{p} " + "x" * 4000, "container.id": "c1"} for p in range(2000)]  # ~8 MB of tree
    store = DictStateStore()
    processor.process([Message("sys", 0, n, b"c1", orjson.dumps(e)) for n, e in enumerate(events)], store)
    assert len(store["c1"]) <= limits.max_bytes
    kept = ProcessTree.from_bytes(store["c1"])
    assert 50 < len(kept) < 2000 and kept.get(100 + 1999) is not None and kept.get(100) is None  # the least recent went
    lone = ProcessTree()
    lone.update({"evt.type": "execve", "evt.time": 1, "proc.pid": 5, "proc.name": "n" * 900_000, "proc.cmdline": ["y" * 900_000]})
    assert len(lone.shrink(100_000)) <= 100_000 and lone.get(5) is not None
