"""Falco's glob is glibc's fnmatch(3) with no flags (libsinsp's sinsp_utils::glob_match):
pipeline/rules/glob.py against the C library itself, in the C locale, on random patterns and
values."""

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
    LIBC.newlocale.restype = ctypes.c_void_p
    LIBC.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    LIBC.uselocale.restype = ctypes.c_void_p
    LIBC.uselocale.argtypes = [ctypes.c_void_p]
    # Falco runs in the C locale; Python sets LC_CTYPE from the environment (C.UTF-8, say),
    # where glibc's fnmatch reads the pattern as wide characters: [=é=] is then one character
    C_LOCALE = LIBC.newlocale(0x1FBF, b"C", None)  # glibc's LC_ALL_MASK
    assert C_LOCALE, "newlocale(LC_ALL_MASK, \"C\")"


def fnmatch_3(pattern: str, value: str) -> bool:
    """The C library's fnmatch(pattern, value, 0) == 0, in the C locale (this thread only)."""
    before = LIBC.uselocale(C_LOCALE)
    try:
        return LIBC.fnmatch(pattern.encode(), value.encode(), 0) == 0
    finally:
        LIBC.uselocale(before)


# pieces of patterns: wildcards, sets and their syntax, escapes, POSIX classes (a range's end
# too), collating symbols, equivalence classes ([=a=], [===], [=]=] and [=\=] are each one
# character; [==] and [=ab=] are malformed; "[=" and "=]" make others, closed or not), and
# ordinary characters
PIECES = ["a", "b", "z", "1", "/", ".", ":", "=", "*", "?", "[", "]", "!", "^", "-", "\\",
          "[:digit:]", "[:alpha:]", "[:punct:]", "[:space:]", "[.a.]", "[..]",
          "[=a=]", "[=-=]", "[==]", "[===]", "[=]=]", "[=\\=]", "[=ab=]", "[=", "=]"]


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@settings(max_examples=3000, deadline=None)
@given(pattern=st.lists(st.sampled_from(PIECES), max_size=7).map("".join),
       value=st.text(alphabet="abz1/.:=*?[]!^-\\ ", max_size=6))
def test_glob_is_fnmatch_3(pattern, value):
    assert glob_match(pattern, value) == fnmatch_3(pattern, value)


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@pytest.mark.parametrize(("pattern", "value"), [
    ("[[.\\[:digit:]", ":"),  # found by the property test: a collating symbol never closed
    ("[[.a]", "a"), ("[[.a]", "[[.a]"), ("x[[.a]", "x["), ("[[..]]", "."), ("[[.ab.]]", "a"),
    ("[[.a.]b]", "a"), ("[[.a.]b]", "b"), ("[[.\\.]]", "\\"), ("[[.-.]]", "-"), ("[[.].]]", "]"),
    ("[[.a.]-c]", "b"), ("[a-[.c.]]", "b"), ("[a-[.c.]]", "d"),
])
def test_collating_symbols_are_read_as_fnmatch_3_reads_them(pattern, value):
    assert glob_match(pattern, value) == fnmatch_3(pattern, value)


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@pytest.mark.parametrize(("pattern", "value"), [
    ("[[=c=]]", "c"), ("[[=c=]]", "c]"), ("[[=c=]]", "[]"), ("[[=c=]d]", "d"),  # one character, as c
    ("[[===]]", "="), ("[[=]=]]", "]"), ("[[=]=]]", "[=]=]]"),  # "=" and "]" may be the character
    ("[[=\\=]]", "\\"), ("[[=\\]=]]", "]]"), ("[[=\\]=]]", "[]"),  # no escape inside: [=\=] is "\"
    ("[[==]]", "="), ("[[==]]", "[]"), ("[[=ab=]]", "a"), ("[[=ab=]]", "[]"),  # malformed: "[" is a member
    ("[a[=bc=]]", "a]"), ("[a[=bc=]]", "b]"), ("[a[=bc=]]", "[]"),  # ... but after a match, nothing
    ("[!a[=bc=]]", "x]"), ("[![=bc=]a]", "xa]"), ("[![=c=]]", "c"), ("[![=c=]]", "d"),
    ("[[=a=]-z]", "-"), ("[[=a=]-z]", "b"),  # no range starts at an equivalence class
    ("[a-[=c=]]", "b"), ("[a-[=c=]]", "=]"),  # a range ends at "[", then "=c=" are members
    ("[[=", "[[="), ("[[=a", "[[=a"), ("[[=a=", "[[=a="), ("[[[=", "[[[="),  # never closed
    ("[a[=a=]", "[aa"), ("[a[=a=]", "a"), ("*[a[=bc=]]", "xa]"), ("*[a[=bc=]]", "x[]"),
    ("[[=é=]]", "=]"), ("[[=é=]]", "é"), ("[a[=é=]]", "a]"),  # C locale: é is two bytes, not one
])
def test_equivalence_classes_are_read_as_fnmatch_3_reads_them(pattern, value):
    assert glob_match(pattern, value) == fnmatch_3(pattern, value)


@pytest.mark.skipif(LIBC is None, reason="compares with the C library's fnmatch(3) (Linux)")
@pytest.mark.parametrize(("pattern", "value"), [
    # glibc tries a set's members in order: one malformed after the member that matched is not read
    ("[a[.bc.]]", "a"), ("[a[.bc.]]", "b"), ("[a[..]b]", "a"), ("[a[:foo:]b]", "a"), ("[a[:foo:]b]", "b"),
    ("[[:a-:]]", ":]"), ("[[:]:]", "[:]"), ("[[.a.]-]", "a"), ("[[.a.]-]", "-"),
    ("[[a-", "[[a-"), ("[a-", "[a-"), ("[1/-[:space:]", "1"), ("[[", "[["),  # never closed
    ("[[.é.]]", "é"), ("[[.é.]]", "["),  # C locale: a collating symbol of two bytes is refused
])
def test_set_members_are_tried_in_order_as_fnmatch_3_does(pattern, value):
    assert glob_match(pattern, value) == fnmatch_3(pattern, value)


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
