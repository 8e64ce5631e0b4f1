"""A batch is processed in steps (the worker's event loop runs between them) with the same
result as in one go; the fetch size setting is checked against the message size limit."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.errors import ConfigError
from pipeline.state.process_tree import ProcessTree
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "peregrine.events.syscall"


def processor():
    from pipeline.stream.delivery import build_processor

    return build_processor(PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "1"}))


def messages(n: int) -> list[Message]:
    out = []
    for i in range(n):
        cid = f"c{i % 3}"
        java = {"evt.type": "execve", "evt.dir": "<", "evt.time": 10 * i + 1, "proc.pid": 100 + i, "proc.ppid": 1, "proc.name": "java",
                "proc.cmdline": "java -jar a", "container.id": cid}
        curl = {"evt.type": "execve", "evt.dir": "<", "evt.time": 10 * i + 2, "proc.pid": 1000 + i, "proc.ppid": 100 + i, "proc.name": "curl",
                "proc.cmdline": "curl x", "container.id": cid}
        out.append(Message(TOPIC, 0, i, cid.encode(), orjson.dumps(java) + b"\n" + orjson.dumps(curl)))
    out.append(Message(TOPIC, 0, n, b"bad", b"{nope"))
    return out


def test_steps_yield_every_n_messages_and_give_what_process_gives():
    batch = messages(100)
    whole_store, stepped_store = DictStateStore(), DictStateStore()
    whole = processor().process(batch, whole_store)
    steps = processor().steps(batch, stepped_store, every=10)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            stepped = done.value
            break
    assert yields == 10
    assert [(k, a.rule, a.uuid) for k, a in stepped.alerts] == [(k, a.rule, a.uuid) for k, a in whole.alerts]
    assert len(whole.alerts) == 100 and {a.rule for _, a in whole.alerts} == {"Java spawned downloader"}
    assert [(d.reason, d.offset) for d in stepped.dead_letters] == [(d.reason, d.offset) for d in whole.dead_letters] == [("undecodable", 100)]
    assert (stepped.events, stepped.enriched, stepped.containers) == (whole.events, whole.enriched, whole.containers) == (200, 100, 3)
    # each container's tree written once, with every process of the batch
    assert set(stepped_store) == {"c0", "c1", "c2"}
    assert {c: len(ProcessTree.from_bytes(stepped_store[c])) for c in stepped_store} == {c: len(ProcessTree.from_bytes(whole_store[c])) for c in whole_store}


def test_the_fetch_size_must_hold_the_largest_message():
    assert PipelineSettings.from_env({}).fetch_max_bytes == 4 << 20
    assert PipelineSettings.from_env({"PEREGRINE_FETCH_MAX_BYTES": "2097152"}).fetch_max_bytes == 2 << 20
    with pytest.raises(ConfigError, match="PEREGRINE_FETCH_MAX_BYTES"):
        PipelineSettings.from_env({"PEREGRINE_FETCH_MAX_BYTES": "1000", "PEREGRINE_MAX_MESSAGE_BYTES": "5000"})


def test_producers_compress_with_zstd_unless_told_otherwise():
    assert PipelineSettings.from_env({}).compression_type == "zstd"
    assert PipelineSettings.from_env({"PEREGRINE_KAFKA_COMPRESSION": "LZ4"}).compression_type == "lz4"
    assert PipelineSettings.from_env({"PEREGRINE_KAFKA_COMPRESSION": "none"}).compression_type is None
    with pytest.raises(ConfigError, match="PEREGRINE_KAFKA_COMPRESSION must be one of none, gzip, snappy, lz4, zstd, got 'brotli'"):
        PipelineSettings.from_env({"PEREGRINE_KAFKA_COMPRESSION": "brotli"})
