"""The engine: evttype index (sound, folded), first/all matching, priorities, the
slow path for odd events, EvaluationError; agreement with the reference evaluator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_condition_properties import MACROS as PROPERTY_MACROS
from test_condition_properties import conditions, events
from toy_fields import toy_registry

from pipeline.engine import EMPTY, Engine, EvaluationError, evttypes_of
from pipeline.errors import ConfigError
from pipeline.fields.registry import BoundField, FieldDef, FieldRegistry, FieldType
from pipeline.rules.ast import And, Compare, FieldRef, ListValue, Literal, MacroRef, Not, Or
from pipeline.rules.parser import parse_condition
from pipeline.rules.reference import ReferenceEvaluator

REGISTRY = toy_registry()


@dataclass(frozen=True)
class FakeRule:
    name: str
    condition: Any
    source: str = "syscall"
    priority: int = 4
    enabled: bool = True


MACROS = {
    "open_read": parse_condition("evt.type in (open, openat) and fd.name exists"),
    "spawned_process": parse_condition("evt.type = execve and proc.name exists"),
    "not_exec": parse_condition("not evt.type = execve"),
}


def rules(*specs: tuple[str, str]) -> list[FakeRule]:
    return [FakeRule(name, parse_condition(text)) for name, text in specs]


def engine(specs: list[FakeRule], **options: Any) -> Engine:
    return Engine(specs, MACROS, lambda source: REGISTRY, **options)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("evt.type = open", "(open)"),
        ("evt.type in (open, openat) and proc.name = x", "(open, openat)"),
        ("open_read or spawned_process", "(execve, open, openat)"),
        ("evt.type != execve", "all event types except (execve)"),
        ("not_exec and proc.name = a", "all event types except (execve)"),
        ("proc.name = a", "all event types"),
        ("not (evt.type = open and proc.name = a)", "all event types"),  # open events can still match
        ("not (evt.type = open or evt.type = close)", "all event types except (close, open)"),
        ("evt.type = open and evt.type = close", "()"),
        ("evt.type in (open, close) and not evt.type = close", "(open)"),
        ("evt.type startswith open", "all event types"),
    ],
)
def test_evttype_sets(text: str, expected: str) -> None:
    assert str(evttypes_of(parse_condition(text), MACROS)) == expected


def test_first_match_stops_at_the_first_rule_in_file_order() -> None:
    specs = rules(("generic", "proc.name = nc"), ("exec nc", "spawned_process and proc.name = nc"))
    first = engine(specs)
    assert [r.name for r in first.evaluate({"evt.type": "execve", "proc.name": "nc"}, "syscall")] == ["generic"]
    every = engine(specs, rule_matching="all")
    assert [r.name for r in every.evaluate({"evt.type": "execve", "proc.name": "nc"}, "syscall")] == ["generic", "exec nc"]
    assert every.evaluate({"evt.type": "open", "proc.name": "ls"}, "syscall") is EMPTY


def test_events_reach_only_their_type_bucket_and_unnamed_types_the_other_bucket() -> None:
    specs = rules(
        ("read etc", "open_read and fd.name startswith /etc"),
        ("not exec nc", "evt.type != execve and proc.name = nc"),
        ("any nc", "proc.name = nc"),
    )
    every = engine(specs, rule_matching="all")
    names = lambda event: [r.name for r in every.evaluate(event, "syscall")]  # noqa: E731
    assert names({"evt.type": "openat", "fd.name": "/etc/shadow", "proc.name": "nc"}) == ["read etc", "not exec nc", "any nc"]
    assert names({"evt.type": "execve", "proc.name": "nc"}) == ["any nc"]
    assert names({"evt.type": "connect", "proc.name": "nc"}) == ["not exec nc", "any nc"]
    assert names({"proc.name": "nc"}) == ["any nc"]  # no evt.type: `!=` on a missing field is false
    assert names({"evt.type": ["odd"], "proc.name": "nc"}) == ["any nc"]
    # 3 named types (open, openat, execve) + the other types + no usable type
    assert every.bucket_count("syscall") == 5
    assert "evt.type" not in every.generated_source("syscall").split("def _bucket1")[1].split("def _dispatch")[0]


def test_disabled_rules_and_min_priority_are_left_out() -> None:
    specs = [
        FakeRule("critical", parse_condition("proc.name = a"), priority=2),
        FakeRule("debug", parse_condition("proc.name = a"), priority=7),
        FakeRule("off", parse_condition("proc.name = a"), priority=0, enabled=False),
    ]
    built = engine(specs, rule_matching="all", min_priority=4)
    assert [r.name for r in built.evaluate({"proc.name": "a"}, "syscall")] == ["critical"]


def test_other_sources_have_one_bucket_and_unknown_sources_match_nothing() -> None:
    specs = [FakeRule("audit", parse_condition("proc.name = a"), source="k8s_audit")]
    built = engine(specs)
    assert [r.name for r in built.evaluate({"proc.name": "a"}, "k8s_audit")] == ["audit"]
    assert built.bucket_count("k8s_audit") == 1
    assert built.evaluate({"proc.name": "a"}, "syscall") is EMPTY
    assert built.evaluator("nope")({"proc.name": "a"}) == ()


def test_odd_values_fall_back_to_the_reference_and_never_raise() -> None:
    specs = rules(("starts", "proc.name startswith ba"), ("bigger", "proc.pid > 3"), ("other", "fd.name = x"))
    built = engine(specs, rule_matching="all")
    assert [r.name for r in built.evaluate({"proc.name": 5, "proc.pid": "7", "fd.name": "x"}, "syscall")] == ["other"]
    assert [r.name for r in built.evaluate({"proc.name": "bash", "proc.pid": 9}, "syscall")] == ["starts", "bigger"]


def test_a_rule_that_cannot_be_evaluated_raises_evaluation_error_naming_it() -> None:
    def explode(event: Any) -> Any:
        raise RuntimeError("extractor bug")

    fields = [FieldDef("proc.name", FieldType.STRING), FieldDef("bad.field", FieldType.STRING)]

    def bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
        if definition.name == "bad.field":
            return BoundField(definition, arg, key, explode)
        return BoundField(definition, arg, key, lambda e: e.get("proc.name"), flat_key="proc.name")

    registry = FieldRegistry("test", fields, bind)
    built = Engine(rules(("fine", "proc.name = zzz"), ("broken", "bad.field = x")), {}, lambda s: registry)
    with pytest.raises(EvaluationError) as caught:
        built.evaluate({"proc.name": "a"}, "syscall")
    assert caught.value.rule_name == "broken"
    assert "extractor bug" in str(caught.value)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        engine([], rule_matching="sometimes")
    with pytest.raises(ConfigError):
        Engine(rules(("x", "proc.name = a")), {}, {})


EVTTYPES = ["open", "openat", "execve", "connect", "close"]


@st.composite
def evttype_conditions(draw: st.DrawFn) -> Any:
    """Conditions mixing evt.type tests (in every position) with random other tests."""
    test = st.one_of(
        st.sampled_from(EVTTYPES).map(lambda t: Compare(FieldRef("evt.type"), draw(st.sampled_from(["=", "!="])), Literal(t))),
        st.lists(st.sampled_from(EVTTYPES), min_size=1, max_size=3).map(lambda ts: Compare(FieldRef("evt.type"), "in", ListValue(tuple(Literal(t) for t in ts)))),
        st.sampled_from(["open_read", "spawned_process", "not_exec"]).map(MacroRef),
        conditions(),
    )
    return draw(
        st.recursive(
            test,
            lambda children: st.one_of(
                children.map(Not),
                st.lists(children, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
                st.lists(children, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
            ),
            max_leaves=6,
        )
    )


ALL_MACROS = {**PROPERTY_MACROS, **MACROS}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(evttype_conditions(), min_size=1, max_size=6),
    st.lists(st.tuples(events(), st.one_of(st.sampled_from(EVTTYPES + ["mmap"]), st.none())), min_size=1, max_size=6),
    st.sampled_from(["first", "all"]),
)
def test_engine_agrees_with_the_reference_rule_by_rule(conditions_: list[Any], sample: list[tuple[dict, Any]], mode: str) -> None:
    specs = [FakeRule(f"r{i}", _flatten(c)) for i, c in enumerate(conditions_)]
    built = Engine(specs, ALL_MACROS, lambda s: REGISTRY, rule_matching=mode)
    reference = ReferenceEvaluator(REGISTRY, ALL_MACROS)
    for event, evttype in sample:
        if evttype is not None:
            event = dict(event, **{"evt.type": evttype})
        expected = [rule for rule in specs if reference.evaluate(rule.condition, event)]
        for rule in expected:
            if isinstance(event.get("evt.type"), str):
                assert evttypes_of(rule.condition, ALL_MACROS).admits(event["evt.type"])
        if mode == "first":
            expected = expected[:1]
        assert list(built.evaluate(event, "syscall")) == expected


def _flatten(node: Any) -> Any:
    if isinstance(node, (And, Or)):
        items: list[Any] = []
        for item in node.items:
            item = _flatten(item)
            items.extend(item.items if type(item) is type(node) else [item])
        return type(node)(tuple(items))
    if isinstance(node, Not):
        return Not(_flatten(node.operand))
    return node


def test_plain_tuples_are_rules_too() -> None:
    built = Engine([("t", parse_condition("proc.name = a"), "syscall")], {}, lambda s: REGISTRY)
    assert [r.name for r in built.evaluate({"proc.name": "a"}, "syscall")] == ["t"]
