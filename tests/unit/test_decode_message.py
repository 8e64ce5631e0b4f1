"""Decoding a message: NDJSON first when it has newlines, a document otherwise, same answers."""

from __future__ import annotations

import pytest

from pipeline.ingest.decode import UNDECODABLE, DecodeError, decode_message


@pytest.mark.parametrize("value,events", [
    (b'{"a": 1}\n{"a": 2}', [{"a": 1}, {"a": 2}]),
    (b'\n{"a": 1}\r\n\n{"a": 2}\n\n', [{"a": 1}, {"a": 2}]),
    (b'{\n  "a": 1,\n  "b": [1,\n 2]\n}\n', [{"a": 1, "b": [1, 2]}]),  # pretty-printed object
    (b'[\n {"a": 1},\n {"a": 2}\n]', [{"a": 1}, {"a": 2}]),  # pretty-printed array
    (b'{"a": 1}\n', [{"a": 1}]),
])
def test_ndjson_and_documents_over_several_lines(value, events):
    assert decode_message(value, 1000) == events


@pytest.mark.parametrize("value,detail", [
    (b'{"a": 1}\n{"a": 2\n{"a": 3}', "NDJSON line 2"),
    (b'{"a": 1}\n[1]', "NDJSON line 2 is a list"),
    (b'{"x":1},{"y":[1\n2]}', "NDJSON line 1"),  # lines that only make JSON when glued are refused
])
def test_a_bad_line_is_named(value, detail):
    with pytest.raises(DecodeError) as error:
        decode_message(value, 1000)
    assert error.value.reason == UNDECODABLE and detail in error.value.detail
