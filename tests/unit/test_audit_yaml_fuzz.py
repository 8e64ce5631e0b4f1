"""No manifest file stops or stalls the configuration audit: multi-document YAML streams mixing
real manifests with alias bombs, recursive anchors, nesting deeper than PyYAML recurses, huge
documents, documents that are not mappings and text that is not YAML. Each bad document is a
problem naming the file and its document (and the line and column where the parser or the alias
check gives them); every real manifest in the stream is still read and audited. The Polaris
config and ``--fix``'s rewrite read YAML too: the same inputs are a clear AuditError there."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batch_fuzz import default_recursion_limit

from pipeline.audit.config import default_config, load_config
from pipeline.audit.evaluate import audit_objects
from pipeline.audit.manifests import read_text
from pipeline.cli.main import main
from pipeline.errors import AuditError

DATA = Path(__file__).resolve().parents[1] / "data" / "manifests"
SEEDS = [doc for path in sorted(DATA.glob("*.yaml")) if path.name != "broken.yaml"
         for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
POD = next(doc for doc in SEEDS if doc["kind"] == "Pod")
LINE_COLUMN = re.compile(r"line (\d+), column (\d+)")


def bomb(levels: int = 9, indent: str = "  ") -> list[str]:
    """Lines of ``levels`` anchored lists of ten aliases each: 10^levels strings once followed."""
    lines = [f"{indent}x0: &a0 [{', '.join(['{name: A, value: secret}'] * 10)}]"]
    lines += [f"{indent}x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return lines


def bombed_pod(name: str = "bombed") -> str:
    """A pod whose env and args are an alias bomb: the checks walk both."""
    return "\n".join(["apiVersion: v1", "kind: Pod", f"metadata: {{name: {name}}}", "spec:", *bomb(),
                      "  containers:", "  - name: c", "    image: nginx:1.25", "    env: *a8", "    args: *a8"])


def recursive_pod(where: str, name: str = "recursive") -> str:
    return {
        "env": f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
               "    env: &e\n    - name: A\n      value: *e",
        "spec": f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: &s\n  containers: [{{name: c, image: x, securityContext: *s}}]",
        "metadata": f"apiVersion: v1\nkind: Pod\nmetadata: &m\n  name: {name}\n  labels: *m\nspec:\n  containers: [{{name: c, image: x}}]",
    }[where]


def deep(levels: int, style: str) -> str:
    if style == "flow-list":
        return "[" * levels + "]" * levels
    if style == "flow-map":
        return "{a: " * levels + "1" + "}" * levels
    levels = min(levels, 350)  # block mappings: as deep for PyYAML, and the indentation grows as levels squared
    return "\n".join("  " * n + "a:" for n in range(levels)) + " 1"


garbage = st.one_of(
    st.sampled_from(["", "# only a comment", "just text", "42", "- a\n- b", "[1, 2]", "null", "~", "!!binary aGk=", "{", "]",
                     "a: b: c", "key: 'unclosed", "\"\\x\"", "\t- tab", "%YAML 1.1", "&a x", "*undefined", "? [a]\n: b",
                     "kind: Pod", "apiVersion: v1\nkind: Deploymnet\nmetadata: {name: typo}", "apiVersion: v1\nkind: List\nitems: [1, {}]",
                     "apiVersion: v1\nkind: Pod\nmetadata: {name: [x]}", "a: &x [*x]", "x" * 50_000]),
    st.builds(deep, st.sampled_from([50, 600]), st.sampled_from(["flow-list", "flow-map", "block"])),  # 600: past what PyYAML recurses
    st.builds(recursive_pod, st.sampled_from(["env", "spec", "metadata"])),
    st.just(bombed_pod()),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40).filter(lambda t: "---" not in t and "..." not in t),
)


@st.composite
def streams(draw) -> tuple[str, list[str]]:
    """A multi-document stream and the names of the real manifests in it (each renamed so)."""
    documents, names = [], []
    for n in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            obj = copy.deepcopy(draw(st.sampled_from(SEEDS)))
            obj["metadata"]["name"] = f"seed-{n}"
            documents.append(yaml.safe_dump(obj, sort_keys=False).rstrip("\n"))
            names.append(f"seed-{n}")
        else:
            documents.append(draw(garbage))
    return "\n---\n".join(documents) + "\n", names


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams())
def test_every_real_manifest_of_any_stream_is_read_and_every_bad_document_named(stream):
    text, names = stream
    with default_recursion_limit():
        found, problems = read_text(text, "fuzz.yaml")
        assert sorted(m.obj["metadata"]["name"] for m in found if m.obj["metadata"]["name"] in names) == sorted(names)
        lines = text.count("\n") + 1
        for problem in problems:
            assert str(problem).startswith("fuzz.yaml"), problem
            assert "Traceback" not in problem.message and "RecursionError" not in problem.message
            for line, _ in LINE_COLUMN.findall(problem.message):
                assert 1 <= int(line) <= lines, problem
        audit_objects([m.obj for m in found], default_config())  # the aliases that got through expand to little


def test_an_alias_bomb_is_a_problem_at_its_line_and_the_other_documents_are_audited():
    """A pod's env and args as a "billion laughs" (10^9 strings once followed): PyYAML builds it
    at once, sharing the lists, and the checks then walked it: ``peregrine audit`` ran for ever,
    past 1.4 GB."""
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before}\n---\n" + bombed_pod() + "\n---\n" + yaml.safe_dump(POD)
    found, problems = read_text(text, "bomb.yaml")
    assert [problem.index for problem in problems] == [1]
    assert "alias bomb" in problems[0].message and "at line 14, column 7" in problems[0].message  # &a5: 10^6 strings
    assert [m.index for m in found] == [0, 2]
    assert audit_objects([m.obj for m in found], default_config())


@pytest.mark.parametrize("where, line, column", [("env", 8, 10), ("spec", 4, 7), ("metadata", 3, 11)])
def test_a_recursive_anchor_is_a_problem_at_its_line_not_an_object(where, line, column):
    """Such an object cannot be sent to the API server (JSON holds no cycle); it was audited as a
    self-containing pod."""
    text = recursive_pod(where) + "\n---\n" + yaml.safe_dump(POD)
    found, problems = read_text(text, "loop.yaml")
    assert [(p.index, "recursive anchor" in p.message) for p in problems] == [(0, True)]
    assert f"at line {line}, column {column}" in problems[0].message
    assert [m.index for m in found] == [1]


def test_ordinary_aliases_still_load():
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: &l {app: web}}\nspec:\n"
            "  containers:\n  - {name: a, image: 'nginx:1', env: &env [{name: A, value: '1'}]}\n"
            "  - {name: b, image: 'nginx:1', env: *env}\n")
    (pod,), problems = read_text(text, "ok.yaml")
    assert problems == [] and pod.obj["spec"]["containers"][1]["env"] == [{"name": "A", "value": "1"}]


def test_a_separator_with_a_document_on_its_line_in_a_broken_file_is_a_problem_not_a_lost_document():
    """When the file does not parse whole it is split on separator lines; '--- {...}' is none,
    and the second document of such a piece was dropped without a word."""
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n--- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\nkey: [unclosed\n"
    found, problems = read_text(text, "split.yaml")
    assert [m.obj["metadata"]["name"] for m in found] == []
    assert [p.index for p in problems] == [0, 1] and "more than one document from line 1" in problems[0].message


@pytest.mark.parametrize("content, expected", [
    ("checks: " + deep(600, "flow-list"), "config is not YAML Peregrine can read: nested too deep"),
    ("checks: &c\n  runAsRootAllowed: danger\n  x: *c\n", "recursive anchor), at line 1, column 9"),
    ("\n".join(bomb(8, "")) + "\ncustomChecks: {x: {schema: *a7}}\n", "alias bomb?); write its items out, at line 6, column 5"),
    ("checks: {a: danger}\n---\nchecks: {}\n", "config holds 2 YAML documents"),
    ("checks: [unclosed\n", "config is not YAML: while parsing a flow sequence at line 1, column 9"),
    (b"checks: {a: \xff}\n", "cannot read config"),
])
def test_a_polaris_config_that_cannot_be_read_is_an_audit_error_naming_the_file(tmp_path, content, expected):
    """Nesting deeper than PyYAML recurses printed a RecursionError traceback, a file not UTF-8
    a UnicodeDecodeError one."""
    path = tmp_path / "polaris.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with default_recursion_limit(), pytest.raises(AuditError) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path)) and expected in str(caught.value)


@pytest.mark.parametrize("broken", [deep(600, "flow-list"), "kind: [unclosed"])
def test_fix_refuses_to_rewrite_a_file_it_cannot_read_whole_and_leaves_it_as_it_was(tmp_path, capsys, broken):
    """``--fix --in-place`` wrote back only the fixed objects of such a file: its other documents
    were gone. A document nested too deep raised RecursionError out of --fix (a traceback)."""
    path = tmp_path / "mixed.yaml"
    text = yaml.safe_dump(POD) + "---\n" + broken + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\n"
    path.write_text(text)
    with default_recursion_limit():
        code = main(["audit", "--fix", "--in-place", str(path)])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert f"{path}: --fix cannot rewrite a file with a document it cannot read" in captured.err.replace("\n", "")
    assert path.read_text() == text


def test_the_cli_audits_the_other_files_and_documents_and_names_each_bad_one(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(bombed_pod() + "\n---\n" + recursive_pod("env") + "\n---\n" + deep(600, "flow-map") + "\n---\n42\n")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(POD))
    with default_recursion_limit():
        code = main(["audit", "--format", "json", str(bad), str(good)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err  # the privileged pod fails danger checks
    assert '"runAsPrivileged"' in captured.out
    problems = [line for line in captured.err.splitlines() if line.startswith("✗")]
    assert [line.split(":")[1].strip() for line in problems] == ["document 0", "document 1", "document 2", "document 3"]
    assert all(line.startswith(f"✗ {bad}") for line in problems)
