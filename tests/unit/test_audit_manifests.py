"""Reading manifests: multi-document files, List kinds, and documents the audit cannot read."""

from __future__ import annotations

from audit_helpers import MANIFESTS

from pipeline.audit.manifests import read_paths, read_text
from pipeline.audit.targets import workload_of


def test_lists_are_unwrapped_and_bad_documents_keep_their_index():
    manifests, problems = read_paths([str(MANIFESTS / "broken.yaml")])
    assert [(m.obj["kind"], m.obj["metadata"]["name"], m.index, m.item) for m in manifests] == [
        ("ConfigMap", "fine", 0, None), ("Widget", "gizmo", 2, None), ("Service", "listed", 3, 0)]
    assert [(p.index, p.message.split(":")[0]) for p in problems] == [
        (1, "not a Kubernetes object (a str)"), (3, "item 1"), (4, "not YAML")]


def test_empty_documents_and_nameless_objects():
    manifests, problems = read_text("---\n---\napiVersion: v1\nkind: Service\nmetadata: {}\n", "x.yaml")
    assert manifests == []
    assert [str(p) for p in problems] == ["x.yaml: document 1: Service has no metadata.name"]


def test_directories_are_read_recursively(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n")
    (tmp_path / "two.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    manifests, problems = read_paths([str(tmp_path)])
    assert sorted(m.obj["metadata"]["name"] for m in manifests) == ["one", "two"] and problems == []


def test_pod_spec_locations():
    cron = {"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                                           "spec": {"containers": [{"name": "x"}]}}}}}}
    workload = workload_of(0, cron)
    assert workload.pod_pointer == "/spec/jobTemplate/spec/template/spec"
    assert workload.pod_labels == {"a": "b"}
    assert [c.pointer for c in workload.containers()] == ["/spec/jobTemplate/spec/template/spec/containers/0"]
    assert workload_of(0, {"kind": "Service", "metadata": {"name": "s"}}) is None
