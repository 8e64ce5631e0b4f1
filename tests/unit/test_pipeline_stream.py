"""The worker's logic without Kafka: message decoding, the process tree, a batch."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.deadletter import DeadLetter
from pipeline.ingest.decode import OVERSIZED, UNDECODABLE, DecodeError, decode_message
from pipeline.sinks.opensearch import daily_index
from pipeline.state.process_tree import ProcessTree, TreeLimits
from pipeline.record_bounds import MAX_PART_BYTES
from pipeline.stream.batch import DictStateStore, Message, kafka_partition, ndjson_records
from pipeline.stream.settings import PipelineSettings
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_a_message_is_one_object_an_array_or_ndjson():
    assert decode_message(b'{"a": 1}', 100) == [{"a": 1}]
    assert decode_message(b'[{"a": 1}, {"a": 2}]', 100) == [{"a": 1}, {"a": 2}]
    assert decode_message(b'{"a": 1}\n\n{"a": 2}\n', 100) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("value,reason", [
    (b"x" * 101, OVERSIZED), (b"{bad", UNDECODABLE), (b"[1]", UNDECODABLE), (b"3", UNDECODABLE),
    (b'nope\n{"a"', UNDECODABLE), (None, UNDECODABLE),
])
def test_bad_messages_are_refused_with_a_reason(value, reason):
    with pytest.raises(DecodeError) as error:
        decode_message(value, 100)
    assert error.value.reason == reason


def exe(pid, ppid, name, t, cmd=None):
    return {"evt.type": "execve", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "proc.ppid": ppid, "proc.name": name,
            "proc.cmdline": cmd or name, "container.id": "c"}


def test_the_tree_supplies_parent_and_ancestors_and_survives_serialisation():
    tree = ProcessTree()
    for event in (exe(10, 1, "containerd-shim", 1), exe(100, 10, "java", 2, "java -jar a"), exe(200, 100, "sh", 3)):
        tree.update(event)
    tree = ProcessTree.from_bytes(tree.to_bytes())
    event = {"evt.type": "execve", "proc.pid": 300, "proc.ppid": 200, "proc.name": "curl"}
    enriched = tree.enrich(event)
    assert enriched["proc.pname"] == "sh" and enriched["proc.aname[1]"] == "sh"
    assert enriched["proc.aname[2]"] == "java" and enriched["proc.aname[3]"] == "containerd-shim"
    assert "proc.pname" not in event  # the original is left alone
    assert tree.enrich({"proc.pid": 5, "proc.pname": "x"}) == {"proc.pid": 5, "proc.pname": "x"}


def test_enriching_in_place_gives_back_the_event_as_produced_and_follows_the_tree():
    from pipeline.state.process_tree import as_produced

    tree = ProcessTree()
    for event in (exe(10, 1, "containerd-shim", 1), exe(100, 10, "java", 2, "java -jar a"), exe(200, 100, "sh", 3)):
        tree.update(event)
    sent = {"evt.type": "openat", "proc.pid": 200, "proc.pname": None, "proc.aname[2]": "collector's", "fd.name": "/x"}
    event = dict(sent)
    undo = tree.enrich_in_place(event)
    # a null is filled, a value the collector sent is never replaced
    assert event == tree.enrich(sent) and event["proc.pname"] == "java" and event["proc.aname[2]"] == "collector's"
    assert event["proc.aname[1]"] == "java" and event["proc.apid[2]"] == 10
    original = as_produced(event, undo)
    assert list(original.items()) == list(sent.items()) and orjson.dumps(original) == orjson.dumps(sent)
    assert tree.enrich_in_place({"proc.pid": 5, "proc.ppid": 4}) is None and as_produced(event, None) is event
    # the ancestors are remembered per process until the tree changes: an exec renames the parent
    tree.update(exe(100, 10, "python3", 4))
    assert tree.enrich({"proc.pid": 300, "proc.ppid": 200})["proc.aname[2]"] == "python3"


@pytest.mark.parametrize("seed", range(8))
def test_remembered_ancestors_are_those_a_fresh_walk_finds(seed):
    """Random execs (parents changing, loops), forks, exits, expiry and the bound on a small pid
    space: enrich with the tree's remembered ancestors equals enrich on a copy that walks afresh."""
    import random

    rng = random.Random(seed)
    tree = ProcessTree(TreeLimits(max_processes=12 if seed % 2 else 100, exited_ttl_ns=30))
    for t in range(1, 1500):
        pid, other = rng.randrange(1, 20), rng.randrange(1, 20)
        kind = rng.random()
        if kind < 0.15:
            event = exe(pid, other, rng.choice(["sh", "java", "nginx", "curl"]), t)
        elif kind < 0.25:
            event = {"evt.type": "clone", "evt.time": t, "proc.pid": pid, "evt.rawres": other, "proc.name": "x"}
        elif kind < 0.32:
            event = {"evt.type": "procexit", "evt.time": t, "proc.pid": pid}
        else:
            event = {"evt.type": "openat", "evt.time": t, "proc.pid": pid, "proc.name": "y"}
            if rng.random() < 0.5:
                event["proc.ppid"] = other
        fresh = ProcessTree.from_bytes(tree.to_bytes(), tree.limits)
        assert tree.enrich(event) == fresh.enrich(event), (t, event)
        tree.update(event)
        if t % 50 == 0:
            tree.expire()


def test_fork_copies_the_parent_and_exit_expires_after_the_ttl():
    tree = ProcessTree(TreeLimits(max_processes=100, exited_ttl_ns=10))
    tree.update(exe(100, 1, "java", 1))
    tree.update({"evt.type": "clone", "evt.time": 2, "proc.pid": 100, "evt.rawres": 101, "proc.name": "java"})
    assert tree.get(101)[0] == "java" and tree.get(101)[3] == 100
    tree.update({"evt.type": "procexit", "evt.time": 3, "proc.pid": 100})
    assert tree.enrich({"proc.pid": 101, "proc.ppid": 100})["proc.pname"] == "java"  # a late child still finds it
    tree.update(exe(500, 1, "sh", 100))
    tree.expire()
    assert tree.get(100) is None and tree.get(101) is not None


def test_the_tree_is_bounded():
    tree = ProcessTree(TreeLimits(max_processes=50))
    for pid in range(500):
        tree.update(exe(pid + 2, 1, "p", pid + 1))
    assert len(tree) == 50 and tree.get(501) is not None


def test_dead_letters_keep_the_bytes_as_text_or_base64():
    text = orjson.loads(DeadLetter("undecodable", "x", "t", 0, 5, b"k", b"{bad").to_json())
    assert (text["encoding"], text["original"], text["offset"], text["key"]) == ("text", "{bad", 5, "k")
    binary = orjson.loads(DeadLetter("undecodable", "x", "t", 0, 5, None, b"\xff\xfe").to_json())
    assert (binary["encoding"], binary["original"]) == ("base64", "//4=")


def test_daily_index_from_the_alert_time():
    assert daily_index("peregrine-alerts-", 1_700_000_000_000_000_000) == "peregrine-alerts-2023.11.14"


def test_settings_from_env_and_errors():
    settings = PipelineSettings.from_env({"PEREGRINE_BATCH_SIZE": "7", "PEREGRINE_STORE": "memory", "PEREGRINE_ROUTE_BY_PRIORITY": "yes"})
    assert (settings.batch_size, settings.store, settings.route_by_priority) == (7, "memory", True)
    with pytest.raises(ConfigError, match="PEREGRINE_STORE"):
        PipelineSettings.from_env({"PEREGRINE_STORE": "redis"})
    with pytest.raises(ConfigError, match="PEREGRINE_BATCH_SIZE"):
        PipelineSettings.from_env({"PEREGRINE_BATCH_SIZE": "many"})


@pytest.fixture
def processor():
    from pipeline.stream.delivery import build_processor

    settings = PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"), "PEREGRINE_PARTITIONS": "2"})
    return build_processor(settings)


def test_a_batch_gives_alerts_dead_letters_state_and_forwards(processor):
    home = next(c for c in (f"c{i}" for i in range(50)) if kafka_partition(c.encode(), 2) == 0)
    away = next(c for c in (f"c{i}" for i in range(50)) if kafka_partition(c.encode(), 2) == 1)
    java, curl = exe(100, 1, "java", 1) | {"container.id": home}, exe(200, 100, "curl", 2) | {"container.id": home}
    del curl["proc.ppid"]
    curl["proc.ppid"] = 100
    events = [java, curl, exe(5, 1, "bash", 3) | {"container.id": away}]
    store = DictStateStore()
    result = processor.process([
        Message("peregrine.events.syscall", 0, 7, b"node", b"\n".join(orjson.dumps(e) for e in events)),
        Message("peregrine.events.syscall", 0, 8, b"node", b"{bad"),
    ], store)
    assert [a.rule for _, a in result.alerts] == ["Java spawned downloader"]
    assert result.alerts[0][1].output_fields["proc.pname"] == "java"
    assert [(d.reason, d.offset) for d in result.dead_letters] == [("undecodable", 8)]
    assert [k for k, _ in result.forwards] == [away.encode()]
    assert set(store) == {home}
    # the alert id is over the event as produced, not as enriched
    again = processor.process([Message("peregrine.events.syscall", 0, 9, b"x", orjson.dumps(curl))], DictStateStore())
    assert again.alerts == [] and result.alerts[0][1].uuid


def test_forwards_are_split_into_records_kafka_takes_and_an_event_too_large_for_one_is_a_dead_letter(processor):
    away = next(c for c in (f"c{i}" for i in range(50)) if kafka_partition(c.encode(), 2) == 1)
    padded = [exe(10 + i, 1, "bash", i, "bash -c " + "A" * 100_000) | {"container.id": away} for i in range(12)]
    huge = exe(9, 1, "bash", 99, "B" * 600_000) | {"container.id": away}
    messages = [Message("peregrine.events.syscall", 0, n, b"node", orjson.dumps(e)) for n, e in enumerate(padded + [huge])]
    result = processor.process(messages, DictStateStore())
    records = [value for _, value in result.forwards]
    assert len(records) == 3 and all(len(r) <= MAX_PART_BYTES for r in records)  # 1.2 MB of one container
    assert [orjson.loads(line)["proc.pid"] for r in records for line in r.split(b"\n")] == list(range(10, 22))
    [letter] = result.dead_letters
    assert (letter.reason, letter.offset) == ("oversized", 12) and "repartitioned record" in letter.detail


def test_ndjson_records_keep_every_line_once_in_order():
    lines = [b"x" * n for n in (10, 50, 30, 200, 5, 5)]
    records = list(ndjson_records(lines, 60))
    assert records == [b"x" * 10, b"x" * 50, b"x" * 30, b"x" * 200, b"x" * 5 + b"\n" + b"x" * 5]
    assert list(ndjson_records([], 60)) == []


def test_retention_picks_daily_indices_older_than_the_cutoff():
    from datetime import datetime, timezone

    from pipeline.cli.alerts import expired_indices

    names = ["peregrine-alerts-2026.11.01", "peregrine-alerts-2026.11.15", "peregrine-alerts-2026.11.22",
             "peregrine-alerts-test-x-2026.01.01", "other-2020.01.01"]
    today = datetime(2026, 11, 22, tzinfo=timezone.utc)
    assert expired_indices(names, "peregrine-alerts-", 7, today) == ["peregrine-alerts-2026.11.01"]
    assert expired_indices(names, "peregrine-alerts-", 0, today) == ["peregrine-alerts-2026.11.01", "peregrine-alerts-2026.11.15"]
    # more days than the calendar has before today, and digits that are no date: neither raises
    assert expired_indices(names, "peregrine-alerts-", 99_999_999, today) == []
    assert expired_indices(["peregrine-alerts-2024.13.45", *names], "peregrine-alerts-", 7, today) == ["peregrine-alerts-2026.11.01"]


def test_retention_deletes_in_requests_whose_index_list_fits_a_request_line():
    """A year of daily indices joined by commas is longer than the 4096 bytes OpenSearch takes
    in a request line (it answered too_long_http_line_exception): they go in several requests."""
    from datetime import date, timedelta

    from pipeline.cli.alerts import MAX_NAMES_CHARS, name_batches

    names = [f"peregrine-alerts-{date(2025, 1, 1) + timedelta(days=n):%Y.%m.%d}" for n in range(365)]
    batches = name_batches(names)
    assert [n for batch in batches for n in batch] == names
    assert all(len(",".join(batch)) <= MAX_NAMES_CHARS for batch in batches) and len(batches) > 1
    assert len(",".join(batches[0])) > MAX_NAMES_CHARS - 28  # each as full as it can be
    assert name_batches(["a" * 5000, "b", "c"], 10) == [["a" * 5000], ["b", "c"]]  # one too long goes alone
    assert name_batches([]) == []


def test_the_workers_default_rules_include_the_correlations_and_a_batch_completes_one():
    import contextvars

    from pipeline.correlation.table import TableCorrelationStore
    from pipeline.stream.delivery import build_processor, worker_rules_paths

    settings = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "1"})
    assert worker_rules_paths(settings)[-1] == str(ROOT / "rules" / "peregrine_correlations.yaml")
    processor = build_processor(settings)
    assert "Drop and execute" in {c.name for c in processor.scanner.correlator.correlations}
    table: dict = {}
    processor.use_correlation_store(TableCorrelationStore(table, contextvars.ContextVar("current", default=None), partitions=1, topic="changelog"))

    class Ref:
        message = Message("peregrine.events.syscall", 0, 0, None, None)

    lines = (ROOT / "tests" / "data" / "correlation" / "drop_execute.jsonl").read_bytes().splitlines()
    result = processor.process([Message("peregrine.events.syscall", 0, i, b"k", line, Ref()) for i, line in enumerate(lines)], DictStateStore())
    assert [a.rule for _, a in result.alerts] == ["Drop and execute"] and not result.dead_letters
    key, alert = result.alerts[0]
    assert key == b"4f2a9c1d7e3b" and [e["id"] for e in alert.output_fields["corr.events"]] == [2000, 2002, 2005, 2007]
    assert table == {}  # the completed match leaves no state behind


def test_priority_topics_are_named_after_the_alert_topic():
    topics = PipelineSettings.from_env({"PEREGRINE_ALERTS_TOPIC": "soc.alerts"}).priority_topics()
    assert topics["critical"] == "soc.alerts.critical" and len(topics) == 8


def test_correlation_limits_come_from_one_setting_and_a_bad_one_names_it():
    from pipeline.stream.delivery import build_processor, correlation_limits

    limits = correlation_limits(PipelineSettings.from_env({"PEREGRINE_CORRELATION_LIMITS": "max_window=2h, throttle=10m,max_groups=500"}))
    assert (limits.max_window_ns, limits.throttle_ns, limits.max_groups) == (7200 * 10**9, 600 * 10**9, 500)
    processor = build_processor(PipelineSettings.from_env({"PEREGRINE_CORRELATION_LIMITS": "max_groups=7"}))
    assert processor.scanner.correlator.limits.max_groups == 7
    for bad, says in (("max_groups", "not name=value"), ("max_window=soon", "duration"), ("colour=red", "unknown correlation setting")):
        with pytest.raises(ConfigError, match=f"PEREGRINE_CORRELATION_LIMITS.*{says}"):
            correlation_limits(PipelineSettings.from_env({"PEREGRINE_CORRELATION_LIMITS": bad}))
    # a window over the limit is refused when the rules load, naming the limit
    with pytest.raises(Exception, match="max_window"):
        build_processor(PipelineSettings.from_env({"PEREGRINE_CORRELATION_LIMITS": "max_window=1m"}))


def test_only_stream_partitions_without_a_committed_offset_are_rewound():
    from pipeline.stream.rewind import uncommitted_stream_partitions

    committed = {"s0": None, "s1": 0, "s2": 7, "changelog0": None}
    assert uncommitted_stream_partitions(committed, lambda tp: tp.startswith("changelog")) == ["s0", "s1"]


def test_changelog_partitions_resume_after_the_last_offset_recovery_applied():
    """A changelog record dropped with a fetch is fetched again: the seek goes to the offset after
    the last one recovery applied, -1 (nothing yet) meaning the first; a partition recovery has
    no offset for yet is left to recovery's own seek."""
    from collections import Counter
    from types import SimpleNamespace

    from pipeline.stream.rewind import changelog_resume_offsets

    recovery = SimpleNamespace(active_tps={"a0", "a1", "a2"}, active_offsets=Counter({"a0": 41, "a1": -1, "a2": None, "s0": 3}),
                               standby_tps={"s0", "s1"}, standby_offsets=Counter({"s0": 7, "a0": 99}))
    # a0's stale standby offset and s0's stale active one are not read: each partition's own role counts
    assert changelog_resume_offsets(recovery) == {"a0": 42, "a1": 0, "s0": 8}


def test_keys_of_records_stay_short_whatever_the_event_carries(processor):
    """A container id, a namespace or a correlation group is a Kafka key, and a key is part of a
    record Kafka bounds: a container id longer than 1024 is refused by the schema; a namespace
    too long to be one keys the alert by its audit id; a long group key goes as its digest."""
    from pipeline.stream.batch import BatchResult, BatchProcessor, _natural_key

    long_id = exe(5, 1, "bash", 1) | {"container.id": "c" * 5000}
    result = processor.process([Message("peregrine.events.syscall", 0, 1, b"x", orjson.dumps(long_id))], DictStateStore())
    [letter] = result.dead_letters
    assert letter.reason == "schema" and "container.id" in letter.detail and result.forwards == []
    audit = {"objectRef": {"namespace": "n" * 5000}, "auditID": "a-1"}
    assert _natural_key(audit, "k8s_audit") == b"a-1"
    assert _natural_key({"objectRef": {"namespace": "shop"}}, "k8s_audit") == b"shop"
    assert _natural_key({"recipientAccountId": "1" * 5000}, "aws_cloudtrail") is None
    routed = BatchResult()
    BatchProcessor._route(routed, [("burst\x1f[\"" + "u" * 5000 + "\"]", "burst"), ("burst\x1f[\"bob\"]", "burst")],
                          {"ka.user.name": "x"}, "k8s_audit")
    keys = sorted(routed.regrouped)
    assert keys[0] == b'burst\x1f["bob"]' and keys[1].startswith(b"sha256:") and len(keys[1]) == 71
