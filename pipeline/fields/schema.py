"""Validating a raw event against its source's JSON Schema, so the pipeline can
dead-letter an event it cannot evaluate with the reason why."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

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
def validator_for(source: str) -> Draft202012Validator:
    if source not in SCHEMA_FILES:
        raise UnknownSource(f"unknown event source '{source}'; known sources: {', '.join(SOURCES)}")
    schema = json.loads((SCHEMAS_DIR / SCHEMA_FILES[source]).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_event(event: Any, source: str) -> None:
    """Raise EventError naming the first problem (path and message), else return None."""
    validator = validator_for(source)
    error = next(iter(sorted(validator.iter_errors(event), key=lambda e: list(e.path))), None)
    if error is None:
        return
    where = "/".join(str(p) for p in error.path) or "(event)"
    raise EventError(f"{source} event does not fit its schema at {where}: {error.message}")
