"""Nothing a producer sends stops the worker: arbitrary messages through the worker's batch
processor (Falco's rules and Peregrine's, the real field registries, schema checks, process
tree, correlations) never raise; each bad event or message is a dead letter with a reason."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import deadletter as dl
from pipeline.alerts import falco_json
from pipeline.alerts.ocsf import ocsf_json
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import daily_index
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.delivery import build_processor
from pipeline.stream.settings import PipelineSettings

from tests.conftest import ROOT

REASONS = {dl.UNDECODABLE, dl.OVERSIZED, dl.SCHEMA, dl.EVALUATION_ERROR}

# fields the rules, the tree and the keys read, plus some they do not
FIELDS = ["evt.type", "evt.time", "evt.dir", "evt.rawres", "evt.hostname", "evt.arg.flags", "container.id", "container.image.repository",
          "container.privileged", "proc.pid", "proc.ppid", "proc.name", "proc.exepath", "proc.exe", "proc.cmdline", "proc.args",
          "proc.pname", "proc.pcmdline", "proc.aname[1]", "proc.aname[2]", "proc.tty", "proc.sid", "proc.vpid", "user.uid",
          "user.name", "fd.name", "fd.typechar", "fd.sip", "fd.sport", "fd.directory", "fd.filename", "k8s.ns.name", "k8s.pod.name",
          "proc.is_exe_upper_layer", "evt.is_open_write", "spawned_process", "whatever"]
EVENT_TYPES = ["execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit", "open", "openat", "openat2", "connect",
               "accept", "setuid", "unlink", "mount", "ptrace", "x"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 64 - 1), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["", "host", "<NA>", "/bin/sh", "sh -c id", "1.2.3.4", "-1", "0x10", "bash",
                                     # digits int() refuses, or past 64 bits (JSON and changelogs hold no more)
                                     "²", "٣", "18446744073709551615000", "9" * 30, "-" + "9" * 30]),
                    st.sampled_from([1e30, -1e30, 1e-30, 2 ** 63, 2 ** 64 - 1, -(2 ** 63)]))
DEEP_OBJECT, DEEP_LIST = "@deep-object@", "@deep-list@"
DEEP_BYTES = {b'"@deep-object@"': b'{"a":' * 1000 + b"1" + b"}" * 1000, b'"@deep-list@"': b"[" * 1000 + b"1" + b"]" * 1000}


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


values = st.one_of(
    st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                 max_leaves=6),
    st.just(_nested(300)),  # orjson reads 1024 levels and writes ~254: every step that wrote it again raised
    # a thousand levels (orjson reads 1024), written into the message by encode(): deeper than Python
    # recurses, which the schema check's messages, the alert keys and the rule outputs did
    st.sampled_from([DEEP_OBJECT, DEEP_LIST]),
)


def _seeds() -> dict[str, list[dict]]:
    """Real events to mutate: bench/engine.py's syscall mix (every rule family it exercises),
    the steps of Peregrine's syscall correlations, the repo's K8s audit and CloudTrail test events."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from syscall_events import NodeStream

    stream = NodeStream(7)
    seeds = {"syscall": [stream.next_event() for _ in range(400)], "k8s_audit": [], "aws_cloudtrail": []}
    for path in sorted((ROOT / "tests" / "data" / "correlation").glob("*.jsonl")):  # steps of Peregrine's correlations
        if path.name != "forbidden_exec.jsonl":  # that one is K8s audit fields, not raw events
            seeds["syscall"] += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for path in sorted((ROOT / "tests" / "data" / "events").glob("*.jsonl")):
        source = "k8s_audit" if path.name.startswith("k8s_audit") else "aws_cloudtrail" if path.name.startswith("cloudtrail") else None
        if source is not None:
            seeds[source] += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return seeds


SEEDS = _seeds()


@st.composite
def events(draw, source: str) -> dict:
    """A real event of ``source`` with up to four fields changed to any JSON value, or removed."""
    event = dict(draw(st.sampled_from(SEEDS[source])))
    keys = sorted(event) + (FIELDS if source == "syscall" else ["objectRef", "verb", "user", "requestObject", "Records", "eventName"])
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(keys))
        if draw(st.integers(0, 4)) == 0:
            event.pop(key, None)
        else:
            event[key] = draw(values)
    return event


def encode(events: list[dict], how: str) -> bytes:
    """As a producer would send them; the json module, which writes nesting orjson does not (and
    the thousand levels of DEEP_BYTES, which it would not either)."""
    if how == "ndjson":
        data = b"\n".join(json.dumps(e).encode() for e in events)
    else:
        data = json.dumps(events if how == "array" else (events[0] if events else {})).encode()
    for marker, nested in DEEP_BYTES.items():
        data = data.replace(marker, nested)
    return data


def messages(source: str):
    return st.one_of(
        st.tuples(st.lists(events(source), min_size=1, max_size=8), st.sampled_from(["ndjson", "array", "one"])).map(lambda t: encode(*t)),
        st.binary(max_size=40),
        st.sampled_from([b"", b"\n\n", b"[]", b"[1, {}]", b'{"a": 1}\n[', b"null", b'"x"', b"{" * 2000, b"[" * 5000 + b"]" * 5000,
                         b'{"evt.time": 1e400}', b'{"x": NaN}', b"\xff\xfe{}"]),
    )


batches = st.lists(st.sampled_from(["syscall", "k8s_audit", "aws_cloudtrail"]).flatmap(
    lambda source: st.tuples(messages(source), st.just(source), st.one_of(st.none(), st.binary(max_size=8)))), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def processor(upstream_rules_dir):
    rules = [upstream_rules_dir / "falco_rules.yaml", *sorted((ROOT / "rules").glob("*_rules.yaml")), ROOT / "rules" / "peregrine_correlations.yaml"]
    os.environ["PEREGRINE_RULES"] = os.pathsep.join(map(str, rules))
    try:
        return build_processor(PipelineSettings.from_env(partitions=1, max_message_bytes=64_000))
    finally:
        del os.environ["PEREGRINE_RULES"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=batches)
def test_any_batch_is_processed_and_every_refusal_is_a_dead_letter_with_a_reason(processor, batch):
    topics = {source: topic for topic, source in processor.source_topics.items()}
    msgs = [Message(topics[source], 0, offset, key, value) for offset, (value, source, key) in enumerate(batch)]
    with default_recursion_limit():
        result = processor.process(msgs, DictStateStore())
        assert {letter.reason for letter in result.dead_letters} <= REASONS
        for letter in result.dead_letters:
            assert letter.detail and letter.topic in processor.source_topics
            assert "RecursionError" not in letter.detail  # a limit of the code, not a reason about the event
            orjson.loads(letter.to_json())  # what goes to the dead-letter topic is JSON
        for _, alert in result.alerts:
            orjson.loads(falco_json(alert))  # and to the alert topic, the OCSF topic and OpenSearch
            orjson.loads(ocsf_json(alert))
            alert_document(alert)
            daily_index("peregrine-alerts-", alert.time_ns)


@contextlib.contextmanager
def default_recursion_limit():
    """Python's default recursion limit, as the worker runs with: Hypothesis raises it by 2000
    while a test runs, which hid every RecursionError a thousand levels of nesting cause."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("field,value", [
    ("evt.time", "18446744073709551615000"), ("evt.time", 1e30), ("evt.time", "²"), ("proc.pid", "9" * 23),
    ("proc.pid", "²"), ("proc.ppid", "9" * 23), ("evt.rawres", "9" * 23), ("proc.pid", 2 ** 64 - 1),
])
def test_numbers_past_64_bits_or_that_int_refuses_neither_stop_the_tree_nor_the_sinks(processor, field, value):
    """Each of these stopped the worker: the process tree took them as a pid or a time and could
    not write itself (orjson: "Integer exceeds 64-bit range"), or int() raised on "²"."""
    event = {"evt.type": "clone" if field == "evt.rawres" else "execve", "evt.time": 5, "proc.pid": 5, "proc.ppid": 1,
             "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": "c1", field: value}
    topic = next(t for t, source in processor.source_topics.items() if source == "syscall")
    store = DictStateStore()
    result = processor.process([Message(topic, 0, 1, b"c1", orjson.dumps(event))], store)
    assert not result.dead_letters
    assert all(orjson.loads(tree) for tree in store.values())  # written (a pid it cannot use is not learnt)
    for _, alert in result.alerts:
        assert 0 < alert.time_ns < 1 << 63
        orjson.loads(falco_json(alert)), orjson.loads(ocsf_json(alert)), alert_document(alert)
