"""Falco's glob is glibc's fnmatch(3) with no flags (libsinsp's sinsp_utils::glob_match):
pipeline/rules/glob.py against the C library itself, on random patterns and values."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.fields import registry_for
from pipeline.rules.compiler import compile_condition
from pipeline.rules.glob import glob_match
from pipeline.rules.parser import parse_condition

LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None
if LIBC is not None:
    LIBC.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]

# pieces of patterns: wildcards, sets and their syntax, escapes, POSIX classes (not as a range's
# end, where glibc's answer depends on its internals), and ordinary characters
PIECES = ["a", "b", "z", "1", "/", ".", ":", "*", "?", "[", "]", "!", "^", "-", "\\", "[:digit:]", "[:alpha:]", "[:punct:]", "[:space:]"]


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@settings(max_examples=3000, deadline=None)
@given(pattern=st.lists(st.sampled_from(PIECES), max_size=7).map("".join).filter(lambda p: "-[:" not in p),
       value=st.text(alphabet="abz1/.:*?[]!^-\\ ", max_size=6))
def test_glob_is_fnmatch_3(pattern, value):
    assert glob_match(pattern, value) == (LIBC.fnmatch(pattern.encode(), value.encode(), 0) == 0)


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@pytest.mark.parametrize(("pattern", "value"), [
    ("[[.\\[:digit:]", ":"),  # found by the property test: a collating symbol never closed
    ("[[.a]", "a"), ("[[.a]", "[[.a]"), ("x[[.a]", "x["), ("[[..]]", "."), ("[[.ab.]]", "a"),
    ("[[.a.]b]", "a"), ("[[.a.]b]", "b"), ("[[.\\.]]", "\\"), ("[[.-.]]", "-"), ("[[.].]]", "]"),
    ("[[.a.]-c]", "b"), ("[a-[.c.]]", "b"), ("[a-[.c.]]", "d"),
])
def test_collating_symbols_are_read_as_fnmatch_3_reads_them(pattern, value):
    assert glob_match(pattern, value) == (LIBC.fnmatch(pattern.encode(), value.encode(), 0) == 0)


@pytest.mark.parametrize(("condition", "name", "expected"), [
    ("proc.name glob '[^a]b'", "cb", True),  # negation, as [!a]: Python's fnmatch reads a set of ^ and a
    ("proc.name glob '[^a]b'", "ab", False),
    ("proc.name glob 'a\\\\*b'", "a*b", True),  # an escaped *: Python's fnmatch has no escapes
    ("proc.name glob 'a\\\\*b'", "axb", False),
    ("proc.name glob '*.so'", "/lib/x.so", True),  # * crosses /
    ("proc.name iglob '*.SO'", "/lib/x.so", True),
    ("proc.name glob '[[:digit:]]*'", "7zip", True),
])
def test_conditions_glob_as_falco_does(condition, name, expected):
    compiled = compile_condition(parse_condition(condition), {}, registry_for("syscall"))
    assert compiled({"proc.name": name}) is expected
