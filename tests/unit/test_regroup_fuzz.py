"""Nothing on the regroup topic stops the worker or is lost without a word: envelopes and
progress records (pipeline/stream/regroup.py), malformed, truncated, nested too deep, of the
wrong types, naming correlations the worker does not regroup, or well formed around hostile
events, read back by the batch processor beside good envelopes. No exception escapes; each bad
line is exactly one dead letter, at its index, with a reason; the good envelopes of the same
batch still complete their correlations."""

from __future__ import annotations

import json
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batch_fuzz import SEEDS, default_recursion_limit, values
from test_correlation_table import CURRENT, ChangelogTable
from test_regroup import EXEC, Ref, forbidden_exec

from pipeline import deadletter as dl
from pipeline.cli.scan import default_rules_paths
from pipeline.correlation.table import TableCorrelationStore
from pipeline.stream.batch import Message
from pipeline.stream.delivery import build_processor
from pipeline.stream.settings import PipelineSettings

from tests.conftest import ROOT

SHELLS = "Chaos shells everywhere"  # a regrouped syscall threshold: 16 bash execs within a minute, by proc.name
RULES = os.pathsep.join([*default_rules_paths(), str(ROOT / "tests" / "data" / "chaos" / "correlations.yaml")])
MAX_MESSAGE_BYTES = 200_000
T0 = 1_796_032_800 * 10 ** 9  # 2026-11-30T10:00:00Z, as forbidden_exec's stageTimestamp


def regroup_worker():
    """A worker of two partitions that regroups a K8s audit and a syscall correlation, its
    correlation state in a table as the worker keeps it."""
    pipeline = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "2", "PEREGRINE_CONFIG_AUDIT": "false", "PEREGRINE_RULES": RULES,
                                          "PEREGRINE_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)})
    processor = build_processor(pipeline)
    processor.use_correlation_store(TableCorrelationStore(ChangelogTable(), CURRENT, partitions=2, topic="corr-changelog"))
    assert processor.scanner.correlator.regroup >= {EXEC, SHELLS}
    return pipeline, processor


def envelope(source: str, names: list, event, origin="k8s_audit:0") -> dict:
    return {"source": source, "correlations": names, "event": event, "origin": origin}


def good_lines(user: str = "good-user") -> list[tuple[str, bytes]]:
    """Twenty forbidden execs of one user and sixteen bash execs: each completes its regrouped
    threshold, in whatever order the batch holds them (they are evaluated in event time)."""
    execs = [envelope("k8s_audit", [EXEC], dict(forbidden_exec(n, user, f"ns-{n % 3}"), auditID=f"good-{n}"), f"k8s_audit:{n % 2}")
             for n in range(20)]
    shells = [envelope("syscall", [SHELLS], {"evt.type": "execve", "evt.time": T0 + n * 10 ** 9, "proc.name": "bash", "proc.pid": 100 + n,
                                             "proc.ppid": 1, "proc.cmdline": "bash", "container.id": f"c{n:011d}"}, f"syscall:{n % 2}")
              for n in range(16)]
    return [("good", orjson.dumps(item)) for item in execs + shells]


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


@st.composite
def bad_lines(draw) -> tuple[str, bytes]:
    """(the reason its dead letter must give, the line)."""
    kind = draw(st.sampled_from(["truncated", "not-object", "too-deep", "wrong-type", "unknown-name", "bad-progress", "wrong-source"]))
    good = envelope("k8s_audit", [EXEC], forbidden_exec(draw(st.integers(0, 59)), "eve", "ns-a"))
    if kind == "truncated":
        line = orjson.dumps(good)
        return dl.UNDECODABLE, line[:draw(st.integers(1, len(line) - 1))]
    if kind == "not-object":
        return dl.UNDECODABLE, draw(st.sampled_from([b"1", b"null", b'"x"', b"true", b"[1, 2]", b"-1e400", b"\xff\xfe", b"{", b"}"]))
    if kind == "too-deep":  # past the 1024 levels orjson reads
        return dl.UNDECODABLE, draw(st.sampled_from([b"[" * 2000 + b"]" * 2000, deep(1100),
                                                     b'{"source":"k8s_audit","correlations":["x"],"event":' + deep(1100) + b"}"]))
    if kind == "wrong-type":
        field = draw(st.sampled_from(["source", "correlations", "event", "origin", None]))
        if field is None:
            del good["event"]  # neither an event nor a progress record
        else:
            wrong = {"source": lambda v: not isinstance(v, str),
                     "correlations": lambda v: not (isinstance(v, list) and v and all(isinstance(n, str) for n in v)),
                     "event": lambda v: not isinstance(v, dict),
                     "origin": lambda v: v is not None and not (isinstance(v, str) and 0 < len(v) <= 300)}[field]
            good[field] = draw(st.one_of(values, st.just("o" * 301), st.just([]), st.just([EXEC, 1])).filter(wrong))
        return dl.SCHEMA, json.dumps(good).encode()
    if kind == "unknown-name":
        good["correlations"] = draw(st.sampled_from([["Removed since"], ["Drop and execute"], [""], ["x" * 1000]]))
        return dl.UNKNOWN_CORRELATION, orjson.dumps(good)
    if kind == "wrong-source":  # a correlation of K8s audit events named for a syscall event, or the reverse
        source, names = draw(st.sampled_from([("syscall", [EXEC]), ("aws_cloudtrail", [EXEC]), ("k8s_audit", [SHELLS]), ("bogus", [EXEC])]))
        good["source"], good["correlations"] = source, names
        return dl.UNKNOWN_CORRELATION, orjson.dumps(good)
    record = {"source": "k8s_audit", "origin": "k8s_audit:0", "progress": T0}
    field = draw(st.sampled_from(["source", "origin", "progress"]))
    wrong = {"source": lambda v: not (isinstance(v, str) and v),
             "origin": lambda v: not (isinstance(v, str) and 0 < len(v) <= 300),
             "progress": lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v >= 0)}[field]
    record[field] = draw(st.one_of(values, st.just(""), st.just(-1), st.just(True)).filter(wrong))
    return dl.SCHEMA, json.dumps(record).encode()


@st.composite
def hostile_lines(draw) -> tuple[str, bytes]:
    """A well-formed envelope (or progress record) around a hostile event: a real one with fields
    changed to any JSON value, nested a thousand deep in places. Taken, or one evaluation_error."""
    source, names = draw(st.sampled_from([("k8s_audit", [EXEC]), ("syscall", [SHELLS]), ("k8s_audit", [EXEC, "RBAC self-escalation"])]))
    if draw(st.integers(0, 5)) == 0:
        return "ok", json.dumps({"source": source, "origin": draw(st.sampled_from(["k8s_audit:1", "x:9", "é" * 300])),
                                 "progress": draw(st.integers(0, 2 ** 64 - 1))}).encode()
    event = dict(draw(st.sampled_from(SEEDS[source])))
    keys = sorted(event) + ["evt.time", "proc.name", "stageTimestamp", "user", "objectRef", "responseStatus", "verb"]
    for _ in range(draw(st.integers(1, 4))):
        event[draw(st.sampled_from(keys))] = draw(values)
    line = json.dumps(envelope(source, names, event, draw(st.sampled_from([None, "k8s_audit:1", "syscall:0"])))).encode()
    for marker, nested in {b'"@deep-object@"': deep(1000), b'"@deep-list@"': b"[" * 1000 + b"1" + b"]" * 1000}.items():
        line = line.replace(marker, nested)
    return "hostile", line


@pytest.fixture(scope="module")
def shared_worker():
    return regroup_worker()


REGROUP_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def check_dead_letters(result, messages: list[list[tuple[str, bytes]]]) -> None:
    """Each bad line is one dead letter at its index with its reason; a hostile line at most one,
    an evaluation error; a good line or a progress record none."""
    by_line: dict[tuple[int, int | None], list] = {}
    for letter in result.dead_letters:
        assert letter.detail and letter.reason in dl.REASONS, letter
        assert "RecursionError" not in letter.detail  # a limit of the code, not a reason about the record
        orjson.loads(letter.to_json())
        by_line.setdefault((letter.offset, letter.index), []).append(letter)
    for offset, lines in enumerate(messages):
        if not any(is_object(line) for _, line in lines):  # no event in the message: it is refused whole, once
            letters = [letter for (at, _), found in list(by_line.items()) if at == offset for letter in by_line.pop((at, _))]
            # ('{' and '}' on two lines are one JSON object whole: an envelope without its fields)
            assert [letter.reason for letter in letters] in ([dl.UNDECODABLE], [dl.SCHEMA]), (lines, letters)
            continue
        for index, (expected, line) in enumerate(lines):
            reasons = [letter.reason for letter in by_line.pop((offset, index), [])]
            if expected in ("good", "ok"):
                assert reasons == [], (line[:300], reasons)
            elif expected == "hostile" and not is_object(line):  # json writes what orjson does not read (Infinity)
                assert reasons == [dl.UNDECODABLE], (line[:300], reasons)
            elif expected == "hostile":
                assert reasons in ([], [dl.EVALUATION_ERROR]), (line[:300], reasons)
            else:
                assert reasons == [expected], (line[:300], reasons)
    assert not by_line, by_line


def is_object(line: bytes) -> bool:
    try:
        return orjson.loads(line).__class__ is dict
    except orjson.JSONDecodeError:
        return False


def as_messages(pipeline, lines: list[list[tuple[str, bytes]]]) -> list[Message]:
    topic = pipeline.regroup_topic
    return [Message(topic, 0, offset, b"k", b"\n".join(line for _, line in message), Ref(topic, 0)) for offset, message in enumerate(lines)]


messages_of_any_lines = st.lists(st.lists(st.one_of(bad_lines(), hostile_lines()), min_size=1, max_size=6), min_size=1, max_size=5)


@settings(max_examples=150, **REGROUP_SETTINGS)
@given(messages=messages_of_any_lines)
def test_any_regroup_record_is_taken_or_one_dead_letter_with_its_reason(shared_worker, messages):
    pipeline, processor = shared_worker
    with default_recursion_limit():
        result = processor.process(as_messages(pipeline, messages), None)
    check_dead_letters(result, messages)


@settings(max_examples=12, **REGROUP_SETTINGS)
@given(bad=st.lists(st.one_of(bad_lines(), hostile_lines()), min_size=1, max_size=12), data=st.data())
def test_bad_records_beside_good_ones_cost_the_good_ones_nothing(bad, data):
    """A fresh worker each time: the good envelopes' event times are fixed, and a shared
    worker's regrouped clock would have moved past them."""
    pipeline, processor = regroup_worker()
    lines = good_lines()
    for item in bad:
        lines.insert(data.draw(st.integers(0, len(lines)), label="at"), item)
    cut = sorted(data.draw(st.lists(st.integers(1, len(lines) - 1), max_size=3, unique=True), label="cuts"))
    messages = [lines[start:end] for start, end in zip([0, *cut], [*cut, len(lines)])]
    with default_recursion_limit():
        result = processor.process(as_messages(pipeline, messages), None)
    check_dead_letters(result, messages)
    groups = {(alert.rule, alert.output_fields.get("ka.user.name") or alert.output_fields.get("proc.name")) for _, alert in result.alerts}
    assert {(EXEC, "good-user"), (SHELLS, "bash")} <= groups


def test_an_oversized_regroup_message_is_one_dead_letter_and_the_next_message_is_read():
    pipeline, processor = regroup_worker()
    topic = pipeline.regroup_topic
    huge = orjson.dumps(envelope("k8s_audit", [EXEC], dict(forbidden_exec(1, "eve", "ns-a"), pad="x" * MAX_MESSAGE_BYTES)))
    good = b"\n".join(line for _, line in good_lines())
    result = processor.process([Message(topic, 0, 0, b"k", huge, Ref(topic, 0)), Message(topic, 0, 1, b"k", good, Ref(topic, 0))], None)
    assert [(letter.reason, letter.offset) for letter in result.dead_letters] == [(dl.OVERSIZED, 0)]
    assert {alert.rule for _, alert in result.alerts} == {EXEC, SHELLS}


@pytest.mark.parametrize("source, names", [("syscall", [EXEC]), ("bogus", [EXEC]), ("k8s_audit", [SHELLS])])
def test_an_envelope_whose_event_is_not_of_its_correlations_source_is_a_dead_letter(source, names):
    """Twenty forbidden execs named for a syscall (or unknown) source went through without an
    alert, a dead letter or a count: the K8s audit correlation never saw them."""
    pipeline, processor = regroup_worker()
    lines = [("x", orjson.dumps(envelope(source, names, forbidden_exec(n, "eve", "ns-a")))) for n in range(20)]
    result = processor.process(as_messages(pipeline, [lines]), None)
    assert [(letter.reason, letter.index) for letter in result.dead_letters] == [(dl.UNKNOWN_CORRELATION, n) for n in range(20)]
    reads = "k8s_audit" if names == [EXEC] else "syscall"
    assert f"'{names[0]}' reads {reads} events, not {source} ones" in result.dead_letters[0].detail


def test_an_envelope_naming_a_correlation_of_its_source_and_one_of_another_is_evaluated_for_the_first():
    pipeline, processor = regroup_worker()
    lines = [(k, line.replace(b'"correlations":["Chaos shells everywhere"]', b'"correlations":["Chaos shells everywhere","%s"]' % EXEC.encode()))
             for k, line in good_lines()]
    result = processor.process(as_messages(pipeline, [lines]), None)
    assert len(result.dead_letters) == 16 and {letter.reason for letter in result.dead_letters} == {dl.UNKNOWN_CORRELATION}
    assert {alert.rule for _, alert in result.alerts} == {EXEC, SHELLS}


def test_an_event_nested_deeper_than_python_recurses_does_not_drop_its_correlation_group():
    """A bash exec whose proc.cmdline (a summary field) was an object nested a thousand deep:
    str() of it raised RecursionError inside the group's evaluation, which the evaluator takes
    for a corrupt stored state: the group, with the 8 shells it had counted, was dropped, and
    the 16th shell made no alert."""
    pipeline, processor = regroup_worker()
    shells = [line for _, line in good_lines() if SHELLS.encode() in line]
    hostile = orjson.loads(shells[8])
    hostile["event"]["evt.time"] -= 5 * 10 ** 8  # between the 8th and the 9th shell
    hostile["event"]["proc.cmdline"] = "@deep@"
    line = orjson.dumps(hostile).replace(b'"@deep@"', deep(1000))
    with default_recursion_limit():
        result = processor.process(as_messages(pipeline, [[("good", x) for x in shells[:8]] + [("x", line)] + [("good", x) for x in shells[8:]]]),
                                   None)
    assert processor.scanner.correlator.stats.corrupt_groups == 0
    assert [alert.rule for _, alert in result.alerts] == [SHELLS]
    assert result.dead_letters == []  # the hostile shell counted too (the 17th): its summary is its JSON, cut short
