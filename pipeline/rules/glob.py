"""Falco's ``glob``: glibc's fnmatch(3) with no flags, as libsinsp calls it.

Python's :mod:`fnmatch` differs from it in two ways a rule author meets:
``[^a]`` is a set holding ``^`` and ``a`` there, where fnmatch(3) reads it as
"not a" (like ``[!a]``), and a backslash is an ordinary character there, where
fnmatch(3) uses it to escape the next one (``a\\*b`` matches ``a*b`` only).
:func:`translate` writes a pattern as a Python regular expression with
fnmatch(3)'s meaning: ``*`` and ``?`` cross ``/`` (no FNM_PATHNAME), a leading
``.`` is not special (no FNM_PERIOD), ``[...]`` sets take ``!``/``^``
negation, ranges and POSIX classes (``[[:digit:]]``), and an unclosed ``[`` is
a literal. A test compares it with the C library's fnmatch on random patterns.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


@lru_cache(maxsize=4096)
def translate(pattern: str) -> str:
    """``pattern`` as a regular expression that matches a whole string as fnmatch(3) would."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:  # a pattern ending in a lone backslash is malformed: fnmatch(3) matches nothing
                out.append("(?!)")
        elif c == "[":
            try:
                found = _bracket(pattern, i)
            except _Malformed:
                return "(?!)"
            if found is None:
                out.append(re.escape("["))
            else:
                regex, i = found
                out.append(regex)
        else:
            out.append(re.escape(c))
    return "(?s:" + "".join(out) + r")\Z"


class _Malformed(Exception):
    pass


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The set opening at ``pattern[start - 1]``: (its regex, the index after it), or None
    when it is not closed (the ``[`` is then a literal)."""
    i, n = start, len(pattern)
    negate = i < n and pattern[i] in "!^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while i < n:
        c = pattern[i]
        if c == "]" and not first:
            body = "".join(parts)
            if not body:  # only reversed ranges: nothing is in the set
                return ("." if negate else "(?!)"), i + 1
            return ("[^" if negate else "[") + body + "]", i + 1
        first = False
        if c == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            if end != -1:
                name = pattern[i + 2:end]
                if name not in _CLASSES:
                    raise _Malformed(name)  # fnmatch(3): an unknown class makes the pattern match nothing
                parts.append(_CLASSES[name])
                i = end + 2
                continue
        low, i = _member(pattern, i)
        if i + 1 < n and pattern[i] == "-" and pattern[i + 1] != "]":
            high, i = _member(pattern, i + 1)
            if ord(high) >= ord(low):
                parts.append(_in_set(low) + "-" + _in_set(high))
            # a reversed range matches nothing in glibc: leave it out
            continue
        parts.append(_in_set(low))
    return None


def _member(pattern: str, i: int) -> tuple[str, int]:
    """The set member at ``pattern[i]`` (a character, an escaped one, or a collating symbol
    ``[.c.]``) and the index after it. In the C locale a collating symbol is one character:
    glibc refuses any other (``[.ab.]``, ``[..]``, a ``[.`` never closed), and the pattern
    then matches nothing."""
    c = pattern[i]
    if c == "[" and pattern.startswith("[.", i):
        end = pattern.find(".]", i + 2)
        if end != i + 3:
            raise _Malformed(pattern[i:])
        return pattern[i + 2], end + 2
    if c == "\\" and i + 1 < len(pattern):
        return pattern[i + 1], i + 2
    return c, i + 1


def _in_set(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


@lru_cache(maxsize=4096)
def compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` translated and compiled (cached): its ``match`` is fnmatch(3)'s answer."""
    return re.compile(translate(pattern))


def glob_match(pattern: str, value: str) -> bool:
    """fnmatch(pattern, value, 0) == 0."""
    return compiled(pattern).match(value) is not None
