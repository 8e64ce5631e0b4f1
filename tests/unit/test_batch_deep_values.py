"""A value nested a thousand levels deep (orjson reads 1024) in a field the batch processor or
the schema check writes out never stops the worker: the event is a schema dead letter naming
the field, or is processed, and the other events of the message still alert."""

from __future__ import annotations

import os

import orjson
import pytest

from pipeline import deadletter as dl
from pipeline.errors import EventError
from pipeline.fields.schema import validate_event
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.delivery import build_processor
from pipeline.stream.settings import PipelineSettings

from tests.conftest import ROOT

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000


def first_event(name: str) -> dict:
    return orjson.loads((ROOT / "tests" / "data" / "events" / name).read_bytes().splitlines()[0])


def with_deep(event: dict, field: str) -> bytes:
    """``event`` as JSON with ``field`` holding DEEP (written by hand: nothing writes it that deep)."""
    return orjson.dumps({**event, field: "@deep@"}).replace(b'"@deep@"', DEEP)


@pytest.fixture(scope="module")
def processor():
    rules = [*sorted((ROOT / "rules").glob("*_rules.yaml")), ROOT / "rules" / "peregrine_correlations.yaml"]
    os.environ["PEREGRINE_RULES"] = os.pathsep.join(map(str, rules))
    try:
        return build_processor(PipelineSettings.from_env(partitions=1, max_message_bytes=64_000))
    finally:
        del os.environ["PEREGRINE_RULES"]


def process(processor, source: str, value: bytes):
    topic = next(t for t, s in processor.source_topics.items() if s == source)
    return processor.process([Message(topic, 0, 7, None, value)], DictStateStore())


@pytest.mark.parametrize(("source", "name", "field"), [
    ("k8s_audit", "k8s_audit_privileged_pod.positive.jsonl", "verb"),
    ("k8s_audit", "k8s_audit_privileged_pod.positive.jsonl", "auditID"),
    ("aws_cloudtrail", "cloudtrail_console_login.positive.jsonl", "eventName"),
])
def test_a_deep_value_where_the_schema_wants_a_string_is_a_schema_dead_letter(processor, source, name, field) -> None:
    """Was RecursionError out of the batch: jsonschema writes the refused value with repr()."""
    good = first_event(name)
    alone = process(processor, source, orjson.dumps(good))
    assert alone.alerts and not alone.dead_letters
    result = process(processor, source, with_deep(good, field) + b"\n" + orjson.dumps({**good, "eventID": "2", "auditID": "2"}))
    (letter,) = result.dead_letters
    assert (letter.reason, letter.index) == (dl.SCHEMA, 0)
    assert letter.detail.startswith(f"{source} event does not fit its schema at {field}: a value nested too deeply")
    rules = {alert.rule for _, alert in alone.alerts if not alert.rule.startswith("Polaris ")}  # the live audit reports an object once
    assert rules and {alert.rule for _, alert in result.alerts} >= rules


def test_validate_event_raises_only_event_error_for_a_deep_value() -> None:
    event = orjson.loads(with_deep(first_event("k8s_audit_privileged_pod.positive.jsonl"), "stage"))
    with pytest.raises(EventError, match="at stage: a value nested too deeply"):
        validate_event(event, "k8s_audit")


def test_a_deep_cloudtrail_account_id_is_no_alert_key_and_the_event_still_alerts(processor) -> None:
    """The CloudTrail schema leaves recipientAccountId open; its str() as the alert's Kafka key
    raised RecursionError out of the batch."""
    result = process(processor, "aws_cloudtrail", with_deep(first_event("cloudtrail_console_login.positive.jsonl"), "recipientAccountId"))
    assert not result.dead_letters
    assert result.alerts and all(key is None for key, _ in result.alerts)


def test_an_alert_field_nested_500_deep_is_cut_for_the_index_not_a_recursion_error() -> None:
    """The OpenSearch document's values are bounded by a recursive walk: an event's object
    nested 500 deep, printed by a rule, raised RecursionError in the worker's delivery."""
    from pipeline.alerts.bounds import bound_values
    from pipeline.json_bytes import DEEPER, MAX_DEPTH

    value = orjson.loads(b'{"a":' * 500 + b'"x"' + b"}" * 500)
    kept, whole = bound_values({"container.image.repository": value, "proc.name": "sh"})
    assert whole == {"container.image.repository": value} and kept["proc.name"] == "sh"
    inner = kept["container.image.repository"]
    for _ in range(MAX_DEPTH):
        inner = inner["a"]
    assert inner == DEEPER


@pytest.mark.parametrize("nested", [b"[" * 1000 + b'"x"' + b"]" * 1000, DEEP], ids=["list", "object"])
def test_a_printed_field_nested_a_thousand_deep_still_alerts(processor, nested) -> None:
    """The syscall schema leaves container.image.repository open and Peregrine's drift rule
    prints it: rendering it recursed past Python's limit, and the event was an evaluation_error
    dead letter ("RecursionError: ...") instead of an alert. The value is cut where json_bytes
    cuts it."""
    from pipeline.alerts import falco_json
    from pipeline.json_bytes import DEEPER
    from pipeline.sinks.document import alert_document

    value = orjson.dumps({**first_event("syscall_exec_bit.positive.jsonl"), "container.image.repository": "@"}).replace(b'"@"', nested)
    result = process(processor, "syscall", value)
    assert not result.dead_letters
    (_, alert), = result.alerts
    assert alert.rule == "Container drift by exec bit"
    assert DEEPER in alert.output
    orjson.loads(falco_json(alert)), alert_document(alert)
