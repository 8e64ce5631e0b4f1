"""Values a producer can send that decode fine and then broke a later step: nesting past what
orjson writes, numbers past 64 bits, a time in the year 2100, one bad item in a batch. Each
stopped the worker for good (it stopped on the same message at every restart) or silently
lost events; now each is processed or set aside with a reason, and the rest flows."""

from __future__ import annotations

import os
from collections import OrderedDict

import orjson
import pytest

from pipeline import deadletter as dl
from pipeline.alerts import falco_json
from pipeline.alerts.bounds import for_kafka
from pipeline.alerts.ocsf import ocsf_json
from pipeline.correlation.table import TableCorrelationStore
from pipeline.fields.coerce import to_int
from pipeline.fields.registry import MISSING
from pipeline.json_bytes import DEEPER, MAX_DEPTH, json_bytes, writable
from pipeline.sinks.document import alert_document
from pipeline.stream.batch import DictStateStore, Message, kafka_partition
from pipeline.stream.delivery import build_processor
from pipeline.stream.settings import PipelineSettings

from tests.conftest import ROOT
from tests.unit.test_correlation_table import CURRENT, ChangelogTable


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, dict):
        value = value["a"]
        depth += 1
    return depth


DEEP = b'{"a":' * 300 + b"1" + b"}" * 300  # orjson reads it (up to 1024), but writes no more than ~254 levels
SHELL = orjson.loads((ROOT / "tests/data/events/syscall_interactive_shell.positive.jsonl").read_bytes().splitlines()[0])
LOG4SHELL, FANOUT = ([orjson.loads(line) for line in (ROOT / "tests/data/correlation" / name).read_bytes().splitlines() if line.strip()]
                     for name in ("log4shell.jsonl", "fanout.jsonl"))


def test_json_bytes_writes_what_orjson_refuses():
    assert json_bytes({"a": 1}) == b'{"a":1}'
    for refused in (nested(300), {"n": 1 << 70}):  # what orjson itself will not write
        with pytest.raises(TypeError):
            orjson.dumps(refused)
    deep = orjson.loads(json_bytes(nested(300)))
    assert depth_of(deep) == MAX_DEPTH and orjson.loads(json_bytes(nested(300))) == writable(nested(300))
    assert orjson.loads(json_bytes({"n": 1 << 70, "m": [-(1 << 64)], "ok": 1 << 63})) == {"n": str(1 << 70), "m": [str(-(1 << 64))],
                                                                                           "ok": 1 << 63}
    # subclasses (the process tree's OrderedDict), tuples and int keys, as orjson would write them
    assert orjson.loads(json_bytes(OrderedDict([(5, ("x", nested(300)))]), orjson.OPT_NON_STR_KEYS))["5"][0] == "x"
    assert DEEPER in json_bytes(nested(10_000)).decode()  # any depth Python holds: no recursion


@pytest.mark.parametrize("text", ["99999999999999999999", "0x" + "f" * 30, "-9" * 30, "9" * 5000])
def test_a_number_field_past_64_bits_has_no_value(text):
    assert to_int(text) is MISSING
    assert to_int(1e300) is MISSING
    assert to_int("18446744073709551615") == (1 << 64) - 1 and to_int("-9223372036854775808") == -(1 << 63)


class Ref:
    """What a Faust event offers the correlation store: the message's topic and partition."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = self
        self.topic, self.partition = topic, partition


@pytest.fixture(scope="module")
def make(upstream_rules_dir):
    rules = [upstream_rules_dir / "falco_rules.yaml", *sorted((ROOT / "rules").glob("*_rules.yaml")), ROOT / "rules" / "peregrine_correlations.yaml"]

    def build(partitions: int = 1):
        os.environ["PEREGRINE_RULES"] = os.pathsep.join(map(str, rules))
        try:
            processor = build_processor(PipelineSettings.from_env(partitions=partitions))
        finally:
            del os.environ["PEREGRINE_RULES"]
        processor.use_correlation_store(TableCorrelationStore(ChangelogTable(), CURRENT, partitions=partitions, topic="corr-changelog"))
        return processor

    return build


def topic_of(processor, source: str) -> str:
    return next(topic for topic, s in processor.source_topics.items() if s == source)


def message(processor, value: bytes, source: str = "syscall", partition: int = 0, offset: int = 1) -> Message:
    topic = topic_of(processor, source)
    return Message(topic, partition, offset, b"k", value, Ref(topic, partition))


def deliverable(result) -> None:
    """What the worker writes of a batch: alerts to Kafka (Falco's JSON, OCSF), to OpenSearch,
    dead letters."""
    for _, alert in result.alerts:
        orjson.loads(for_kafka(alert)[1]), orjson.loads(falco_json(alert)), orjson.loads(ocsf_json(alert)), alert_document(alert)
    for letter in result.dead_letters:
        orjson.loads(letter.to_json())


def test_a_field_nested_past_what_orjson_writes_is_evaluated_and_its_alert_written(make):
    processor = make()
    deep_shell = orjson.dumps(SHELL)[:-1] + b',"x":' + DEEP + b"}"
    store = DictStateStore()
    result = processor.process([message(processor, orjson.dumps(SHELL) + b"\n" + deep_shell)], store)
    assert [alert.rule for _, alert in result.alerts] == ["Terminal shell in container"] * 2 and not result.dead_letters
    deliverable(result)
    # a process whose exe path is such a value: the tree keeps it, and writes itself
    odd = orjson.dumps(dict(SHELL, **{"proc.pid": 9}))[:-1] + b',"proc.exepath":' + b'{"a":' * 252 + b"1" + b"}" * 252 + b"}"
    processor.process([message(processor, odd, offset=2)], store)
    assert all(orjson.loads(tree) for tree in store.values())


def test_an_event_nested_too_deep_to_forward_is_a_dead_letter_and_the_rest_flows(make):
    processor = make(partitions=4)
    cid = SHELL["container.id"]
    away = (kafka_partition(cid.encode(), 4) + 1) % 4  # it arrived on a partition that is not its container's
    deep_shell = orjson.dumps(SHELL)[:-1] + b',"x":' + DEEP + b"}"
    result = processor.process([message(processor, orjson.dumps(SHELL) + b"\n" + deep_shell, partition=away)], DictStateStore())
    assert len(result.forwards) == 1 and orjson.loads(result.forwards[0][1]) == SHELL
    [letter] = result.dead_letters
    assert (letter.reason, letter.index, letter.partition) == (dl.UNDECODABLE, 1, away)
    assert "cannot be forwarded to its container's partition" in letter.detail
    deliverable(result)


@pytest.mark.parametrize("field,value", [("evt.num", "9" * 30), ("evt.num", 1e300), ("evt.time", 1e300)])
def test_numbers_past_64_bits_do_not_stop_the_correlation_state(make, field, value):
    """evt.num is an event's id in a sequence's state; the state's changelog write raised."""
    processor = make()
    for events in (LOG4SHELL, FANOUT):
        steps = [dict(event, **{field: value}) if n == 0 else event for n, event in enumerate(events)]
        result = processor.process([message(processor, b"\n".join(orjson.dumps(e) for e in steps))], DictStateStore())
        deliverable(result)


def test_an_event_from_the_future_does_not_silence_its_partitions_correlations(make):
    processor = make()
    poison = {"evt.type": "x", "evt.time": 4_102_444_800 * 10**9, "container.id": "other"}  # 2100-01-01
    batch = [message(processor, orjson.dumps(poison), offset=0),
             message(processor, b"\n".join(orjson.dumps(e) for e in LOG4SHELL), offset=1)]
    result = processor.process(batch, DictStateStore())
    assert "Log4Shell exploitation chain" in [alert.rule for _, alert in result.alerts]
    stats = processor.scanner.correlator.stats
    assert stats.future == 1 and stats.late == 0


def test_one_bad_item_of_a_batch_is_a_dead_letter_and_the_others_are_processed(make):
    processor = make()
    good = orjson.dumps(SHELL)
    for value, index, original in ((good + b"\n{nope\n" + good.replace(b"4001", b"4002"), 1, b"{nope"),
                                   (b"[" + good + b",7," + good.replace(b"4001", b"4002") + b"]", 1, b"7")):
        result = processor.process([message(processor, value)], DictStateStore())
        assert [alert.rule for _, alert in result.alerts] == ["Terminal shell in container"] * 2
        [letter] = result.dead_letters
        assert (letter.reason, letter.index, letter.original) == (dl.UNDECODABLE, index, original)
        assert result.events == 2


def test_cloudtrail_records_that_are_not_objects_are_dead_letters(make):
    processor = make()
    login = orjson.loads((ROOT / "tests/data/events/cloudtrail_console_login.positive.jsonl").read_bytes().splitlines()[0])
    result = processor.process([message(processor, orjson.dumps({"Records": [login, 1, None]}), "aws_cloudtrail")], DictStateStore())
    assert len(result.alerts) == 1
    assert [(letter.reason, letter.index, letter.detail) for letter in result.dead_letters] == [
        (dl.UNDECODABLE, 1, "Records[1] is a int, not an object"), (dl.UNDECODABLE, 2, "Records[2] is a null, not an object")]


def test_a_message_of_thousands_of_bad_events_is_one_hundred_dead_letters_and_itself(make):
    """A 1 MB message of `{}` lines made one dead letter per line (333K, ~96 MB on the dead-letter
    topic). Past 100 a message, the rest are counted and the message is kept whole once."""
    from pipeline.stream.batch import MAX_DEAD_LETTERS_PER_MESSAGE

    processor = make()
    value = b"\n".join([b"{}"] * 250 + [orjson.dumps(SHELL)] + [b"7"] * 50)
    result = processor.process([message(processor, value)], DictStateStore())
    assert [alert.rule for _, alert in result.alerts] == ["Terminal shell in container"]  # the good event still counts
    letters = result.dead_letters
    assert len(letters) == MAX_DEAD_LETTERS_PER_MESSAGE + 1
    assert all(letter.reason == dl.SCHEMA and letter.index == n for n, letter in enumerate(letters[:-1]))
    last = letters[-1]
    assert (last.reason, last.index, last.original) == (dl.SCHEMA, None, value)
    assert last.detail.startswith("200 more events of this message were refused (150 schema, 50 undecodable)")


def test_an_event_dead_letter_keeps_the_lines_own_bytes(make):
    """Written again by orjson, a refused event lost what its producer sent: a duplicate key,
    the spelling of a number (1.0, 1e3), the key order, spacing."""
    processor = make()
    odd = b'{"evt.type": 5, "evt.time": 1.0e3, "container.id": "c1", "container.id": "c2"}'
    value = orjson.dumps(SHELL) + b"\n  " + odd + b"  \n" + orjson.dumps(SHELL).replace(b"4001", b"4002")
    result = processor.process([message(processor, value)], DictStateStore())
    [letter] = result.dead_letters
    assert (letter.reason, letter.index, letter.original) == (dl.SCHEMA, 1, odd)
    # an array's item has no bytes of its own: it is written again
    result = processor.process([message(processor, b"[" + odd + b"]", offset=2)], DictStateStore())
    assert orjson.loads(result.dead_letters[0].original) == orjson.loads(odd)
