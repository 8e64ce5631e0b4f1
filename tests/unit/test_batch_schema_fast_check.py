"""The batch runs the schema's fast check itself, once bound per message, and calls the validator
only for the events that check does not pass: the same events are accepted and refused, with the
same reasons, as when the validator was called for every event."""

from __future__ import annotations

import orjson
import pytest

from pipeline import deadletter as dl
from pipeline.errors import EventError
from pipeline.fields import UnknownSource
from pipeline.fields.schema import fast_check, validate_event
from pipeline.stream.batch import BatchProcessor, DictStateStore, Message


class Seen:
    """A scanner that records the events it is given."""

    correlator = None

    def __init__(self) -> None:
        self.events: list[dict] = []

    def scan_event(self, event, source):
        self.events.append(dict(event))
        return []


def run(events: list[dict], validate) -> tuple[Seen, object]:
    scanner = Seen()
    processor = BatchProcessor(scanner, {"sys": "syscall"}, syscall_partitions=1, max_message_bytes=1 << 20, validate=validate)
    value = b"\n".join(orjson.dumps(event) for event in events)
    return scanner, processor.process([Message("sys", 0, 0, b"c1", value)], DictStateStore())


GOOD = {"evt.type": "open", "evt.time": 1, "container.id": "c1", "proc.pid": 5}
FLOAT_PID = dict(GOOD, **{"proc.pid": 6.0})  # the fast check refuses it, jsonschema accepts it (6.0 is an integer)
NO_CONTAINER = {"evt.type": "open", "evt.time": 2}  # both refuse it
BAD_DIR = dict(GOOD, **{"evt.dir": "?"})


def test_what_the_fast_check_leaves_to_jsonschema_is_accepted_or_refused_by_it():
    assert fast_check("syscall")(GOOD) is True and fast_check("syscall")(FLOAT_PID) is False
    scanner, result = run([GOOD, FLOAT_PID, NO_CONTAINER, BAD_DIR], validate_event)
    assert [e["proc.pid"] for e in scanner.events] == [5, 6.0]
    letters = [(letter.reason, letter.index) for letter in result.dead_letters]
    assert letters == [(dl.SCHEMA, 2), (dl.SCHEMA, 3)]
    for letter, event in zip(result.dead_letters, (NO_CONTAINER, BAD_DIR)):
        with pytest.raises(EventError) as error:
            validate_event(event, "syscall")
        assert letter.detail == str(error.value)  # the validator's own reason, as before


def test_a_validator_without_a_fast_check_is_called_for_every_event():
    calls: list[tuple[int, str]] = []

    def validate(event, source):
        calls.append((event["evt.time"], source))
        if event["evt.time"] == 2:
            raise EventError("two is refused")

    scanner, result = run([GOOD, NO_CONTAINER, dict(GOOD, **{"evt.time": 3})], validate)
    assert calls == [(1, "syscall"), (2, "syscall"), (3, "syscall")]
    assert [e["evt.time"] for e in scanner.events] == [1, 3]
    assert [(letter.reason, letter.detail) for letter in result.dead_letters] == [(dl.SCHEMA, "two is refused")]


def test_a_source_without_a_schema_has_no_fast_check_and_the_validator_still_names_it():
    assert fast_check("nope") is None
    with pytest.raises(UnknownSource):
        validate_event({}, "nope")
