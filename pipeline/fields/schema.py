"""Validating a raw event against its source's JSON Schema, so the pipeline can
dead-letter an event it cannot evaluate with the reason why.

The worker checks every event, so the check has a fast path: a flat schema
compiled to one Python function (pipeline.fields.fastcheck, ~1 us an event),
else fastjsonschema's compiled code (~4 us), against ~100 us for jsonschema's
interpreter. Only an event the fast check refuses goes through jsonschema,
which is the reference: it names the problem, and when it finds none the
event is accepted (the fast check never lets through an event jsonschema
would refuse; tests compare them on generated events)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from jsonschema import Draft202012Validator

from pipeline.errors import EventError
from pipeline.fields import SOURCES, UnknownSource

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_FILES = {
    "syscall": "syscall-event.schema.json",
    "k8s_audit": "k8s-audit-event.schema.json",
    "aws_cloudtrail": "cloudtrail-event.schema.json",
}


@lru_cache(maxsize=None)
def fast_check_for(source: str) -> Callable[[Any], bool] | None:
    """``check(event) -> bool`` (True: the event fits; False: ask jsonschema): the flat
    compiler's, else fastjsonschema's; None when neither compiles the schema."""
    validator_for(source)  # unknown source -> UnknownSource; the schema itself is checked there
    schema = json.loads((SCHEMAS_DIR / SCHEMA_FILES[source]).read_text())
    from pipeline.fields.fastcheck import compile_flat

    flat = compile_flat(schema)
    if flat is not None:
        return flat
    try:
        import fastjsonschema

        compiled = fastjsonschema.compile(schema)
    except Exception:  # noqa: BLE001 - a schema it cannot compile: the slow path stays correct
        return None

    def check(event: Any) -> bool:
        try:
            compiled(event)
            return True
        except Exception:  # noqa: BLE001 - JsonSchemaException or a surprise: ask jsonschema
            return False

    return check


@lru_cache(maxsize=None)
def validator_for(source: str) -> Draft202012Validator:
    if source not in SCHEMA_FILES:
        raise UnknownSource(f"unknown event source '{source}'; known sources: {', '.join(SOURCES)}")
    schema = json.loads((SCHEMAS_DIR / SCHEMA_FILES[source]).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _refer(event: Any) -> bool:
    return False  # no fast check for this source: jsonschema decides


_FAST: dict[str, Callable[[Any], bool]] = {}  # source -> fast check (a dict: this runs for every event)


def fast_check(source: str) -> Callable[[Any], bool] | None:
    """``check(event) -> bool`` of ``source``: True, the event fits; False, only
    :func:`validate_event` can tell (it names the problem, or accepts the event). None for a
    source without a schema (validate_event raises UnknownSource). For a caller that checks
    many events of one source (the worker's batch, per message), so that the usual event costs
    the check alone."""
    fast = _FAST.get(source)
    if fast is None:
        if source not in SCHEMA_FILES:
            return None
        fast = _FAST[source] = fast_check_for(source) or _refer
    return fast


def validate_event(event: Any, source: str) -> None:
    """Raise EventError naming the first problem (path and message), else return None."""
    fast = _FAST.get(source) or fast_check(source)
    if fast is not None and fast(event):
        return
    validator = validator_for(source)
    try:
        error = next(iter(sorted(validator.iter_errors(event), key=lambda e: list(e.path))), None)
    except RecursionError:  # jsonschema writes the value it refuses with repr(), one recursion a level
        raise EventError(f"{source} event does not fit its schema at {_deepest(event)}: a value nested too deeply "
                         "(hundreds of levels) where the schema expects another type") from None
    if error is None:
        return
    where = "/".join(str(p) for p in error.path) or "(event)"
    raise EventError(f"{source} event does not fit its schema at {where}: {error.message}")


def _deepest(event: Any) -> str:
    """The field of ``event`` whose value nests deepest (counted without recursion)."""
    if not isinstance(event, dict) or not event:
        return "(event)"
    best, best_depth = "(event)", -1
    for name, value in event.items():
        depth, stack = 0, [(value, 1)]
        while stack:
            item, level = stack.pop()
            depth = max(depth, level)
            if isinstance(item, dict):
                stack.extend((child, level + 1) for child in item.values())
            elif isinstance(item, list):
                stack.extend((child, level + 1) for child in item)
        if depth > best_depth:
            best, best_depth = str(name), depth
    return best


# what pipeline/stream/batch.py looks for on the validator it is given: the check it may run
# first, once a message, before calling the validator for the events the check does not pass
validate_event.fast_check = fast_check  # type: ignore[attr-defined]
