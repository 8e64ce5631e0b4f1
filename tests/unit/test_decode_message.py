"""Decoding a message: NDJSON first when it has newlines, a document otherwise, same answers."""

from __future__ import annotations

import pytest

from pipeline.ingest.decode import UNDECODABLE, DecodeError, Refused, decode_message


@pytest.mark.parametrize("value,events", [
    (b'{"a": 1}\n{"a": 2}', [{"a": 1}, {"a": 2}]),
    (b'\n{"a": 1}\r\n\n{"a": 2}\n\n', [{"a": 1}, {"a": 2}]),
    (b'{\n  "a": 1,\n  "b": [1,\n 2]\n}\n', [{"a": 1, "b": [1, 2]}]),  # pretty-printed object
    (b'[\n {"a": 1},\n {"a": 2}\n]', [{"a": 1}, {"a": 2}]),  # pretty-printed array
    (b'{"a": 1}\n', [{"a": 1}]),
])
def test_ndjson_and_documents_over_several_lines(value, events):
    assert decode_message(value, 1000) == events


def test_a_message_with_no_event_is_named_and_refused_whole():
    # lines that only make JSON when glued are refused, and nothing is left
    with pytest.raises(DecodeError) as error:
        decode_message(b'{"x":1},{"y":[1\n2]}', 1000)
    assert error.value.reason == UNDECODABLE and "NDJSON line 1" in error.value.detail
    with pytest.raises(DecodeError) as error:
        decode_message(b'[1, "a", null]', 1000)
    assert "no item of the array is an event: array item 0 is a int" in error.value.detail


@pytest.mark.parametrize("value,index,detail,original", [
    (b'{"a": 1}\n{"a": 2\n{"a": 3}', 1, "NDJSON line 2: unexpected", b'{"a": 2'),
    (b'{"a": 1}\n[1]\n{"a": 3}', 1, "NDJSON line 2 is a list, not an object", b"[1]"),
    (b'{"a": 1}\n\nnope\n{"a": 3}', 1, "NDJSON line 3: ", b"nope"),
    (b'[{"a": 1}, 7, {"a": 3}]', 1, "array item 1 is a int, not an object", b"7"),
    (b'[{"a": 1}, null, {"a": 3}]', 1, "array item 1 is a null, not an object", b"null"),
])
def test_a_bad_item_is_refused_alone_in_its_place(value, index, detail, original):
    """One bad line or array item no longer takes the message's good events with it."""
    items = decode_message(value, 1000)
    assert [item for n, item in enumerate(items) if n != index] == [{"a": 1}, {"a": 3}]
    refused = items[index]
    assert isinstance(refused, Refused) and refused.detail.startswith(detail) and refused.original == original


def test_a_byte_order_mark_is_skipped():
    assert decode_message(b'\xef\xbb\xbf{"a": 1}', 1000) == [{"a": 1}]
    assert decode_message(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}', 1000) == [{"a": 1}, {"a": 2}]
