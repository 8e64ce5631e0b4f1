"""Reading events from inputs: JSON lines, arrays, EventLists, CloudTrail Records, bad lines."""

from __future__ import annotations

import io

from pipeline.event_input import BadRecord, EventRecord, read_events


def records(data: bytes) -> list:
    return list(read_events("-", io.BytesIO(data)))


def test_json_lines_with_blank_lines_and_bom():
    got = records(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"a": 2}\n')
    assert [(r.event, r.where.line) for r in got] == [({"a": 1}, 1), ({"a": 2}, 4)]
    assert all(r.where.path == "<stdin>" and r.source_hint is None for r in got)


def test_bad_lines_keep_their_numbers_and_the_rest_is_read():
    got = records(b'{"a": 1}\n{"a": \n[1, {"b": 2}]\n"text"\n{"a": 3}\n')
    kinds = [(type(r).__name__, r.where.line, r.where.item) for r in got]
    assert kinds == [("EventRecord", 1, None), ("BadRecord", 2, None), ("BadRecord", 3, 0), ("EventRecord", 3, 1),
                     ("BadRecord", 4, None), ("EventRecord", 5, None)]
    assert "malformed JSON" in got[1].message
    assert str(got[2].where) == "<stdin>:3 (item 0)"


def test_pretty_printed_eventlist_is_k8s_audit():
    got = records(b'\n{\n  "kind": "EventList",\n  "items": [{"verb": "get"}, {"verb": "list"}]\n}\n')
    assert [r.event["verb"] for r in got] == ["get", "list"]
    assert {r.source_hint for r in got} == {"k8s_audit"}
    assert got[0].where.line == 2


def test_cloudtrail_records_file():
    got = records(b'{"Records": [{"eventName": "ConsoleLogin"}]}')
    assert isinstance(got[0], EventRecord) and got[0].source_hint == "aws_cloudtrail"


def test_empty_input_has_no_records():
    assert records(b"  \n") == []
    assert isinstance(records(b"nonsense")[0], BadRecord)
