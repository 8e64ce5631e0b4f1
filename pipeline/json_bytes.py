"""JSON bytes of anything an event can bring, for the places that write it again.

orjson reads more than it writes: it parses objects nested 1024 deep but
writes only about 254 levels, and it refuses an integer past 64 bits (which a
coercion of the text ``"99999999999999999999"`` or of ``1e300`` can make), or
text holding a lone surrogate (which the json module reads from ``"\\ud800"``).
An event with such a value decoded fine, then made the step that writes it
(an alert, a dead letter, a stored state) raise, and the worker stopped on
the same message at every restart.

:func:`json_bytes` writes a value as orjson does when it can (the normal case
pays one ``try``), else :func:`writable`'s copy of it: integers past 64 bits
as their decimal text, lone surrogates as U+FFFD, anything nested deeper than
:data:`MAX_DEPTH` as a short note, other values orjson has no type for as their ``str``. A caller
that would rather refuse such a value than change it (an event forwarded to
another partition) catches orjson's TypeError itself.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_DEPTH = 128  # objects and arrays kept when a value must be rewritten (orjson writes ~254)
_INT_MIN, _INT_END = -(1 << 63), 1 << 64  # orjson writes int64 and uint64
_SURROGATE = re.compile("[\ud800-\udfff]")
DEEPER = f"...[nested deeper than {MAX_DEPTH} levels]"


def json_bytes(value: Any, option: int = 0) -> bytes:
    """``orjson.dumps(value, option=option, default=str)``, for any value (see the module)."""
    try:
        return orjson.dumps(value, option=option, default=str)
    except TypeError:
        return orjson.dumps(writable(value), option=option, default=str)


def writable(value: Any) -> Any:
    """A copy of ``value`` that orjson writes: see the module. Walked without recursion, so
    any depth Python can hold is fine."""
    if not isinstance(value, (dict, list, tuple)):
        return _scalar(value)
    root: list[Any] = [None]
    # (container to copy, where its copy goes: (parent, key), its depth)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    while stack:
        node, parent, slot, depth = stack.pop()
        if depth > MAX_DEPTH:
            parent[slot] = DEEPER
            continue
        if isinstance(node, dict):
            copy: Any = {}
            items = node.items()
        else:
            copy = [None] * len(node)
            items = enumerate(node)
        parent[slot] = copy
        keyed = copy.__class__ is dict
        for key, child in items:
            if keyed and key.__class__ is not str:
                key = str(_scalar(key))
            if isinstance(child, (dict, list, tuple)):
                if keyed:
                    copy[key] = None  # keeps the key order
                stack.append((child, copy, key, depth + 1))
            else:
                copy[key] = _scalar(child)
    return root[0]


def _scalar(value: Any) -> Any:
    if value.__class__ is int and not _INT_MIN <= value < _INT_END:
        return str(value)
    if value.__class__ is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON's "\\ud800", which json.loads takes)
            return _SURROGATE.sub("\ufffd", value)
    return value
