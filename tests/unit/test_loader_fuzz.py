"""A mutated rules or correlations file either loads or is a RuleError whose every location is
in the file (path, a line it has, a column), never another exception: Peregrine's own files with
items dropped, duplicated or broken (wrong types, cut conditions, stray parentheses, exceptions
of every shape, YAML anchors, recursive ones among them, tabs, truncated lines). Run at Python's
default recursion limit, as the loader runs (Hypothesis raises it while a test runs)."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.correlation.parse import load_rules_and_correlations
from pipeline.errors import RuleError, RuleErrors

from tests.conftest import ROOT

FILES = sorted((ROOT / "rules").glob("*_rules.yaml")) + [ROOT / "rules" / "peregrine_correlations.yaml"]
DOCUMENTS = {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in FILES}

ATOMS = [None, True, 0, -1, 2 ** 70, 1.5, "", " ", "(", ")", "not", "and", "evt.type =", "proc.name in (", "%proc.name", "%",
         "%step.x.proc.name", "\t", "a" * 3000, "0s", "-1m", "999999999999999d", "sequence", "threshold", "distinct", "[x]",
         "proc.aname[99999999999999999999]", "proc.name regex '('", "proc.name = 'a", "tolower(tolower(proc.name)) = x",
         "(" * 300 + "evt.type = open" + ")" * 300, "not " * 300 + "evt.type = open", "CRITICAL", "bogus",
         [{"name": "e", "fields": ["proc.name"], "values": [["a"]]}], [{"name": "e", "fields": "proc.name", "comps": "in", "values": [["a"]]}],
         [{"name": "e", "fields": ["proc.name", "fd.name"], "comps": ["=", "in"], "values": [["a", ["b", ["c"]]]]}],
         {"condition": "append"}, {"items": "replace"}, [{"name": "s", "condition": "evt.type = open"}]]
KEYS = ["override", "append", "enabled", "exceptions", "source", "tags", "items", "condition", "steps", "by", "window", "maxspan",
        "count", "distinct", "output", "priority", "type", "bogus"]
LINES = ["- &a [x, *a]", "- x: *nope", "---", "- !!binary aGk=", "- {", "- &b {list: b, items: [x]}", "- *b",
         "- x: &c [[[[[[[[[[a]]]]]]]]]]", "- list: deep\n  items: " + "[" * 200 + "a" + "]" * 200]


def _mutated(draw, value):
    how = draw(st.integers(0, 5))
    if how == 0:
        return draw(st.sampled_from(ATOMS))
    if how == 1 and isinstance(value, str) and value:
        return value[: draw(st.integers(0, len(value)))]  # cut short
    if how == 2 and isinstance(value, str):
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(st.sampled_from(["(", ")", " and ", " not ", "'", '"', ",", "%", "\\", " in (", "="])) + value[at:]
    if how == 3 and isinstance(value, list):
        return value * draw(st.integers(0, 20))
    return value


@st.composite
def mutated_files(draw) -> bytes:
    items = copy.deepcopy(DOCUMENTS[draw(st.sampled_from(sorted(DOCUMENTS)))])
    for _ in range(draw(st.integers(1, 4))):
        if not items:
            break
        index = draw(st.integers(0, len(items) - 1))
        item = items[index]
        how = draw(st.integers(0, 5))
        if how == 0 and isinstance(item, dict) and item:
            item.pop(draw(st.sampled_from(sorted(item))))
        elif how == 1:
            items.insert(draw(st.integers(0, len(items))), copy.deepcopy(item))
        elif how == 2 and isinstance(item, dict) and item:
            key = draw(st.sampled_from(sorted(item)))
            item[key] = _mutated(draw, item[key])
        elif how == 3 and isinstance(item, dict):
            item[draw(st.sampled_from(KEYS))] = draw(st.sampled_from(ATOMS))
        elif how == 4 and isinstance(item, dict) and "macro" in item:
            item["condition"] = f"{item['macro']} or ({item.get('condition')})"  # a macro using itself
        else:
            items[index] = draw(st.sampled_from(ATOMS))
    lines = yaml.safe_dump(items, width=10 ** 9, allow_unicode=True, sort_keys=False).split("\n")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:
            lines.insert(at, lines[at])  # a duplicate key
        elif how == 1:
            lines[at] = "\t" + lines[at]
        elif how == 2:
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        else:
            lines.insert(at, draw(st.sampled_from(LINES)))
    return "\n".join(lines).encode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=mutated_files(), collect=st.booleans())
def test_a_mutated_rules_file_loads_or_is_a_rule_error_inside_the_file(tmp_path_factory, data: bytes, collect: bool) -> None:
    path = tmp_path_factory.mktemp("rules") / "mutated.yaml"
    path.write_bytes(data)
    lines = data.count(b"\n") + 1
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        load_rules_and_correlations([path], collect_errors=collect)
    except RuleError as error:
        for one in error.errors if isinstance(error, RuleErrors) else [error]:
            assert one.location is not None, str(one)
            assert one.location.path == str(path), str(one)
            assert 1 <= one.location.line <= lines + 1 and one.location.col >= 1, str(one)
            str(one)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_unmutated_files_load(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(DOCUMENTS[name], width=10 ** 9, allow_unicode=True, sort_keys=False))
    load_rules_and_correlations([path])
