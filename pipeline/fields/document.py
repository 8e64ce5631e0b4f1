"""Reading fields out of nested JSON documents (Kubernetes audit events, CloudTrail records).

Shared by the ``k8s_audit`` and ``cloudtrail`` sources: a path lookup that is
MISSING at the first step that is not an object, RFC 6901 pointers for
``jevt.value[...]`` / ``json.value[...]``, and the guard that turns a
surprising shape into MISSING instead of an error.
"""

from __future__ import annotations

from typing import Any, Callable


from pipeline.fields.coerce import to_str
from pipeline.fields.registry import MISSING
from pipeline.json_bytes import json_bytes

_M = MISSING


def dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``; MISSING where a step is not an object or the key (or its value) is absent/null."""
    for step in path:
        if obj.__class__ is not dict:
            return _M
        obj = obj.get(step, _M)
    return _M if obj is None else obj


def json_pointer_extractor(pointer: str) -> Callable[[Any], Any]:
    """RFC 6901: ``/a/b~1c/0``; ``~1`` is ``/`` and ``~0`` is ``~``. Objects and lists come back as JSON text."""
    if pointer in ("", "/"):
        steps: tuple[str, ...] = () if pointer == "" else ("",)
    else:
        steps = tuple(s.replace("~1", "/").replace("~0", "~") for s in pointer.lstrip("/").split("/")) if pointer.startswith("/") else (pointer,)

    def extract(e: Any) -> Any:
        obj = e
        for step in steps:
            if obj.__class__ is dict:
                obj = obj.get(step, _M)
            elif obj.__class__ is list and step.isdigit() and int(step) < len(obj):
                obj = obj[int(step)]
            else:
                return _M
        if obj is None or obj is _M:
            return _M
        if obj.__class__ in (dict, list):
            return json_bytes(obj).decode()
        return to_str(obj)

    return extract


def never_raising(extract: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Documents are nested: a non-dict event or a surprising shape is MISSING, never an error."""

    def guarded(e: Any) -> Any:
        if e.__class__ is not dict:
            return _M
        try:
            return extract(e)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError):
            return _M

    return guarded
