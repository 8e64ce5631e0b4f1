"""int64: the one reading of a producer's pid, time or count (pipeline/ingest/numbers.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.numbers import INT64, int64


@given(st.integers(-INT64, INT64 - 1))
def test_an_int_within_64_bits_is_itself_as_an_int_or_as_its_digits(number: int) -> None:
    assert int64(number) == number and int64(str(number)) == number


@given(st.one_of(st.integers(INT64, 10 ** 30), st.integers(-(10 ** 30), -INT64 - 1)))
def test_beyond_64_bits_is_none(number: int) -> None:
    assert int64(number) is None and int64(str(number)) is None


def test_what_is_not_an_integer_is_none() -> None:
    for value in (True, False, None, 1.0, "", "-", "²", "٣", " 5", "5 ", "+5", "0x10", "1e3", [5], {"a": 5}):
        assert int64(value) is None, value
