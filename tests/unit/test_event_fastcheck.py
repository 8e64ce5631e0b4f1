"""The per-event fast check agrees with jsonschema: whatever it accepts, jsonschema accepts,
and it accepts the events collectors send; validate_event still names the problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.errors import EventError
from pipeline.fields.fastcheck import compile_flat
from pipeline.fields.schema import SCHEMA_FILES, SCHEMAS_DIR, fast_check_for, validate_event, validator_for

ROOT = Path(__file__).resolve().parents[2]
SYSCALL = json.loads((SCHEMAS_DIR / SCHEMA_FILES["syscall"]).read_text())
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3),
                   st.sampled_from(["<", ">", "x"]), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@pytest.mark.parametrize("source", ["syscall", "aws_cloudtrail", "k8s_audit"])
def test_every_source_has_a_fast_check(source):
    assert fast_check_for(source) is not None


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SYSCALL["properties"]) + ["other"]), VALUES, max_size=8), st.booleans())
def test_what_the_flat_check_accepts_jsonschema_accepts(event, complete):
    if complete:
        event = {"evt.type": "openat", "evt.time": 1, "container.id": "c"} | event
    fast = fast_check_for("syscall")
    if fast(event):
        assert validator_for("syscall").is_valid(event), event


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["aws_cloudtrail", "k8s_audit"]), st.dictionaries(st.text(max_size=12), VALUES, max_size=6))
def test_other_sources_fast_checks_are_never_looser(source, event):
    if fast_check_for(source)(event):
        assert validator_for(source).is_valid(event)


def test_the_benchmark_mix_passes_the_fast_check():
    sys.path.insert(0, str(ROOT / "bench"))
    from syscall_events import generate_events

    fast = fast_check_for("syscall")
    assert all(fast(event) for event in generate_events(2000, seed=7))


def test_refused_events_get_jsonschema_s_reason_and_float_integers_pass():
    with pytest.raises(EventError, match="container.id"):
        validate_event({"evt.type": "open", "evt.time": 1}, "syscall")
    with pytest.raises(EventError, match="evt.dir"):
        validate_event({"evt.type": "open", "evt.time": 1, "container.id": "c", "evt.dir": "?"}, "syscall")
    event = {"evt.type": "open", "evt.time": 1, "container.id": "c", "proc.pid": 5.0}
    assert fast_check_for("syscall")(event) is False  # stricter than the schema...
    validate_event(event, "syscall")  # ...so jsonschema decides: 5.0 is an integer


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"x": {}}},
    {"type": "object", "properties": {"a": {"pattern": "x"}}},
    {"type": "object", "properties": {"a": {"enum": [1, True]}}},
    {"type": "array"},
    {"type": "object", "additionalProperties": False},
])
def test_keywords_outside_the_subset_leave_it_to_the_general_validators(schema):
    assert compile_flat(schema) is None
