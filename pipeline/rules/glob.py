"""Falco's ``glob``: glibc's fnmatch(3) with no flags, as libsinsp calls it.

Python's :mod:`fnmatch` differs from it in two ways a rule author meets:
``[^a]`` is a set holding ``^`` and ``a`` there, where fnmatch(3) reads it as
"not a" (like ``[!a]``), and a backslash is an ordinary character there, where
fnmatch(3) uses it to escape the next one (``a\\*b`` matches ``a*b`` only).
:func:`translate` writes a pattern as a Python regular expression with
fnmatch(3)'s meaning: ``*`` and ``?`` cross ``/`` (no FNM_PATHNAME), a leading
``.`` is not special (no FNM_PERIOD), ``[...]`` sets take ``!``/``^``
negation, ranges, POSIX classes (``[[:digit:]]``), collating symbols
(``[[.c.]]``) and equivalence classes (``[[=c=]]``), and an unclosed ``[`` is
a literal. A test compares it with the C library's fnmatch on random patterns.

Sets are read as glibc reads them in the C locale, member by member against the
character at hand: the first member that holds it decides, and glibc then skips
the rest of the set with a looser reader of its own, which refuses some things
the first one accepted (``[=ab=]`` after the member that matched makes the
character match nothing) and accepts some it refused (``[.ab.]``). A malformed
member met before any member matched (an unknown class, ``[.ab.]``, a range
ending the pattern) makes the character match nothing; a set never closed makes
its ``[`` an ordinary character. So which characters a set takes, and where the
pattern goes on after it, can depend on the member that took the character:
:func:`_bracket` gives each case its own branch, and a well-formed set is one
character class as before.

In the C locale a collating symbol or an equivalence class names one byte: a
character that is more than one byte in UTF-8 (``[[=é=]]``) is read as glibc
reads those bytes, ``[=`` not being an equivalence class. Elsewhere the pattern
and the value are read a character at a time, not a byte at a time as fnmatch(3)
in the C locale would (``?`` matches ``é``); the tests compare ASCII values.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}
_CLASS_NAME_MAX = 2048  # glibc 2.36: a longer class name ([:xxx...) makes the character match nothing

# what becomes of a character a set's member took, or that no member took
_FAIL = "fail"  # the pattern does not match here
_LITERAL = "literal"  # the set is never closed: its "[" is an ordinary character


@lru_cache(maxsize=4096)
def translate(pattern: str) -> str:
    """``pattern`` as a regular expression that matches a whole string as fnmatch(3) would."""
    return "(?s:" + _from(pattern, 0) + r")\Z"


def _from(pattern: str, i: int) -> str:
    """The regular expression for ``pattern[i:]``."""
    out: list[str] = []
    n = len(pattern)
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
            branches = _bracket(pattern, i)
            if not branches:  # no character gets past this set
                out.append("(?!)")
                break
            if len(branches) == 1:
                regex, i = branches[0]
                out.append(regex)
                continue
            # where the pattern goes on depends on the character: each branch its own rest
            out.append("(?:" + "|".join(regex + _from(pattern, j) for regex, j in branches) + ")")
            break
        else:
            out.append(re.escape(c))
    return "".join(out)


def _bracket(pattern: str, start: int) -> list[tuple[str, int]]:
    """The set opening at ``pattern[start - 1]`` as branches (a regex for one character, the
    index the pattern goes on from), the characters of no two branches in common; none when
    no character gets past it."""
    negate, members, last = _members(pattern, start)
    branches: list[tuple[str, int]] = []
    before = ""  # the members read so far, as the body of a character class
    if not negate:
        k = 0
        while k < len(members):  # a run of members with the same outcome is one branch
            body, outcome = members[k]
            run = [body]
            k += 1
            while k < len(members) and members[k][1] == outcome:
                run.append(members[k][0])
                k += 1
            if isinstance(outcome, int):
                taken = "[" + "".join(run) + "]"
                branches.append((f"(?![{before}]){taken}" if before else taken, outcome))
            before += "".join(run)
    else:
        before = "".join(body for body, _ in members)
        if isinstance(last, int):
            branches.append(("[^" + before + "]" if before else ".", last))
    # "[" itself: the set may be no set at all for it
    outcome = last
    for body, member_outcome in members:
        if re.match("[" + body + "]", "["):
            outcome = member_outcome
            break
    if outcome == _LITERAL:
        branches.append((re.escape("["), start))
    return _merge(branches)


def _merge(branches: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Branches going on from the same index as one."""
    by_index: dict[int, list[str]] = {}
    for regex, j in branches:
        by_index.setdefault(j, []).append(regex)
    return [(regexes[0] if len(regexes) == 1 else "(?:" + "|".join(regexes) + ")", j)
            for j, regexes in by_index.items()]


def _members(pattern: str, start: int) -> tuple[bool, list[tuple[str, int | str]], int | str]:
    """glibc's reading of the set opening at ``pattern[start - 1]`` (posix/fnmatch_loop.c, C
    locale): whether it is negated, its members in the order they are tried, each a character
    class body and what becomes of a character it takes (the index after the set as glibc's
    skip finds it, or _FAIL or _LITERAL), and what becomes of a character none takes (the
    index after the set, or _FAIL or _LITERAL)."""
    n = len(pattern)

    def at(k: int) -> str:
        return pattern[k] if k < n else ""

    members: list[tuple[str, int | str]] = []
    skips: dict[int, int | str] = {}
    p = start
    negate = at(p) in ("!", "^")
    if negate:
        p += 1
    c = at(p)
    p += 1
    while True:
        low = None  # the character of a member that may start a range
        symbol = False  # that member is a collating symbol
        if c == "\\":
            if at(p) == "":
                return negate, members, _FAIL
            low = at(p)
            p += 1
        elif c == "[" and at(p) == ":":
            startp, name = p, ""
            while True:
                if len(name) == _CLASS_NAME_MAX:
                    return negate, members, _FAIL
                p += 1
                c = at(p)
                if c == ":" and at(p + 1) == "]":
                    p += 2
                    break
                if not "a" <= c < "z":  # no class name: "[" is an ordinary member
                    p, low = startp, "["
                    break
                name += c
            if low is None:
                if name not in _CLASSES:
                    return negate, members, _FAIL
                members.append((_CLASSES[name], _skip(pattern, p, skips)))
        elif c == "[" and at(p) == "=":
            equiv = at(p + 1)
            if equiv != "" and _one_byte(equiv) and at(p + 2) == "=" and at(p + 3) == "]":
                p += 4
                members.append((_in_set(equiv), _skip(pattern, p, skips)))
            else:  # [==], [=ab=], [= never closed, [=é=] (bytes in the C locale): "[" is a member
                low = "["
        elif c == "":
            return negate, members, _LITERAL
        elif c == "[" and at(p) == ".":
            low, p = _collating(pattern, p)
            if low is None:
                return negate, members, _FAIL
            symbol = True
        else:
            low = c
        if low is None:  # a class or an equivalence class: no range starts at it
            c = at(p)
            p += 1
        else:
            # glibc tries the member alone unless a range may follow; "-]" ends no range after
            # an ordinary character, but after a collating symbol the symbol is then lost
            if not (at(p) == "-" and at(p + 1) != "" and (symbol or at(p + 1) != "]")):
                members.append((_in_set(low), _skip(pattern, p, skips)))
            c = at(p)
            p += 1
            if c == "-" and at(p) != "]":
                high, p = _range_end(pattern, p)
                if high is None:
                    return negate, members, _FAIL
                if low <= high:  # a reversed range holds nothing
                    members.append((_in_set(low) + "-" + _in_set(high), _skip(pattern, p, skips)))
                c = at(p)
                p += 1
        if c == "]":
            return negate, members, p


def _range_end(pattern: str, p: int) -> tuple[str | None, int]:
    """The end of a range at ``pattern[p]``, after its "-": (its character, the index after it),
    or (None, _) when it is malformed (the pattern ends, or a collating symbol glibc refuses)."""
    high = pattern[p] if p < len(pattern) else ""
    p += 1
    if high == "[" and pattern.startswith(".", p):
        return _collating(pattern, p)
    if high == "\\":
        high = pattern[p] if p < len(pattern) else ""
        p += 1
    return (high or None), p


def _collating(pattern: str, p: int) -> tuple[str | None, int]:
    """The collating symbol ``[.c.]`` whose "." is at ``pattern[p]``: (its character, the index
    after it), or (None, _) when glibc refuses it: in the C locale a symbol is one byte, so
    ``[..]``, ``[.ab.]``, ``[.é.]`` and a ``[.`` never closed make the character match nothing."""
    end = pattern.find(".]", p + 1)
    if end == -1:
        return None, len(pattern)
    symbol = pattern[p + 1:end]
    if len(symbol) != 1 or not _one_byte(symbol):
        return None, end + 2
    return symbol, end + 2


def _skip(pattern: str, p: int, known: dict[int, int | str]) -> int | str:
    """glibc's skip over the rest of a set once a member took the character, from
    ``pattern[p]``: the index after the set, or _FAIL or _LITERAL. It reads less than the
    members' reader: no ranges, any ``[.xyz.]``, but an ``[=`` must be ``[=c=]``; a set it
    finds never closed makes the "[" an ordinary character (glibc 2.36). ``known`` holds the
    answers from the places an earlier skip over the same set went through."""
    n = len(pattern)

    def at(k: int) -> str:
        return pattern[k] if k < n else ""

    visited = []
    while p not in known:
        visited.append(p)
        c = at(p)
        p += 1
        if c == "]":
            answer: int | str = p
            break
        if c == "":
            answer = _LITERAL
            break
        if c == "\\":
            if at(p) == "":
                answer = _FAIL
                break
            p += 1
        elif c == "[" and at(p) == ":":
            startp, length = p, 0
            while True:
                p += 1
                c = at(p)
                length += 1
                if length == _CLASS_NAME_MAX:
                    break
                if c == ":" and at(p + 1) == "]":
                    break
                if not "a" <= c < "z":  # no class name: go on from the ":"
                    p = startp - 2
                    break
            if length == _CLASS_NAME_MAX:
                answer = _FAIL
                break
            p += 2
        elif c == "[" and at(p) == "=":
            equiv = at(p + 1)
            if equiv == "" or not _one_byte(equiv) or at(p + 2) != "=" or at(p + 3) != "]":
                answer = _FAIL
                break
            p += 4
        elif c == "[" and at(p) == ".":
            end = pattern.find(".]", p + 1)
            if end == -1:
                answer = _FAIL
                break
            p = end + 2
    else:
        answer = known[p]
    for k in visited:
        known[k] = answer
    return answer


def _one_byte(c: str) -> bool:
    """One byte in UTF-8, a character of its own in the C locale."""
    return c < "\x80"


def _in_set(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


@lru_cache(maxsize=4096)
def compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` translated and compiled (cached): its ``match`` is fnmatch(3)'s answer."""
    return re.compile(translate(pattern))


def glob_match(pattern: str, value: str) -> bool:
    """fnmatch(pattern, value, 0) == 0."""
    return compiled(pattern).match(value) is not None
