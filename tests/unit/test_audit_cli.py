"""`peregrine audit` end to end through pipeline.cli.main.main: output, exit codes, fixes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from audit_helpers import MANIFESTS

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "data" / "polaris" / "config.yaml"


def _json(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["audit", *map(str, args), "--format", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_json_findings_and_danger_exit_code(capsys):
    code, rows, _ = _json(capsys, MANIFESTS / "privileged-pod.yaml")
    assert code == 1
    assert len(rows) == 28
    keys = {"check", "success", "severity", "category", "message", "kind", "namespace", "name", "container"}
    assert all(keys <= set(row) for row in rows)
    host_pid = next(r for r in rows if r["check"] == "hostPIDSet")
    assert host_pid == host_pid | {"success": False, "severity": "danger", "category": "Security", "kind": "Pod",
                                   "namespace": "tools", "name": "root-shell", "container": None,
                                   "message": "Host PID should not be configured", "document": 0}
    assert next(r for r in rows if r["check"] == "tagNotSpecified")["container"] == "shell"


def test_only_failed(capsys):
    _, rows, _ = _json(capsys, MANIFESTS / "privileged-pod.yaml", "--only-failed")
    assert len(rows) == 23 and not any(r["success"] for r in rows)


def test_own_deployment_manifests_score_100(capsys):
    code = main(["audit", str(ROOT / "deploy" / "k8s"), "--min-score", "100"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Score: 100" in out
    assert "✗" not in out
    code, rows, err = _json(capsys, ROOT / "deploy" / "k8s")
    assert code == 0 and err == ""
    assert rows and all(r["success"] for r in rows)
    assert {r["name"] for r in rows if r["kind"] == "Deployment"} == {"peregrine-worker", "peregrine-audit-webhook"}


def test_min_score(capsys, tmp_path):
    assert main(["audit", str(MANIFESTS / "hardened-deployment.yaml"), "--min-score", "100"]) == 0
    capsys.readouterr()
    # warnings only (no danger fails): the exit code is the score's
    warnings_only = tmp_path / "warnings.yaml"
    warnings_only.write_text("checks:\n  hostPathSet: warning\n  priorityClassNotSet: warning\n")
    daemonset = str(MANIFESTS / "hostpath-daemonset.yaml")
    assert main(["audit", daemonset, "--config", str(warnings_only), "--min-score", "1"]) == 1
    assert "Score: 0  (0 passed, 2 warnings, 0 dangers)" in capsys.readouterr().out
    assert main(["audit", daemonset, "--config", str(warnings_only), "--min-score", "0"]) == 0


def test_pretty_report_groups_by_object(capsys):
    code = main(["audit", str(MANIFESTS / "rbac-exec.yaml"), "--only-failed"])
    out = capsys.readouterr().out
    assert code == 1
    assert "Role shop/debugger" in out and "rolePodExecAttach" in out and "danger" in out
    assert "Role shop/reader " not in out  # nothing failed there
    assert "Score: 56  (13 passed, 0 warnings, 10 dangers)" in out


def test_unreadable_documents_are_reported_and_the_audit_goes_on(capsys):
    code = main(["audit", str(MANIFESTS / "broken.yaml")])
    captured = capsys.readouterr()
    assert code == 3
    path = str(MANIFESTS / "broken.yaml")
    assert f"{path}: document 1: not a Kubernetes object (a str)" in captured.out
    assert "document 2" not in captured.out  # a custom resource: read, no check targets it
    assert f"{path}: document 3: item 1: not a Kubernetes object (no apiVersion/kind)" in captured.out
    assert f"{path}: document 4: not YAML: while parsing a flow sequence at line 23, column 6" in captured.out
    code, rows, err = _json(capsys, MANIFESTS / "broken.yaml")
    assert code == 3
    assert [(r["kind"], r["name"]) for r in rows] == [("ConfigMap", "fine")]
    assert "document 1: not a Kubernetes object" in err


def test_directory_and_config(capsys):
    code, rows, err = _json(capsys, MANIFESTS / "jobs.yaml", "--config", CONFIG)
    assert "unknown check 'cpuLimitsRange'" in err
    assert not any(r["check"] == "pullPolicyNotAlways" for r in rows)
    assert any(r["check"] == "resourceLimits" for r in rows)


def test_bad_config_is_one_line_exit_2(capsys, tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("customChecks:\n  x:\n    successMessage: a\n    category: Security\n    target: Container\n    schema: {type: objekt}\n")
    code = main(["audit", str(MANIFESTS / "jobs.yaml"), "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert "config.yaml: customChecks.x: check x: invalid JSON Schema" in err
    assert "Traceback" not in err


def test_missing_path(capsys):
    assert main(["audit", "/nonexistent/manifests"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_fix_then_reaudit_passes_the_fixed_checks(capsys, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(MANIFESTS / "privileged-pod.yaml", source / "pod.yaml")
    shutil.copy(MANIFESTS / "hostpath-daemonset.yaml", source / "ds.yaml")
    _, before, _ = _json(capsys, source)
    out = tmp_path / "out"
    main(["audit", str(source), "--fix", "--fix-output", str(out)])
    assert "fixed 15 failed check(s) in 2 file(s)" in capsys.readouterr().err
    _, after, _ = _json(capsys, out)
    fixable = {"hostPIDSet", "hostNetworkSet", "runAsPrivileged", "privilegeEscalationAllowed", "runAsRootAllowed",
               "notReadOnlyRootFilesystem", "insecureCapabilities", "pullPolicyNotAlways", "automountServiceAccountToken"}
    failed_before = {(r["name"], r["container"], r["check"]) for r in before if not r["success"]}
    failed_after = {(r["name"], r["container"], r["check"]) for r in after if not r["success"]}
    fixed = {k for k in failed_before if k[2] in fixable}
    assert len(fixed) == 15  # 9 on the pod, 6 on the DaemonSet
    assert not fixed & failed_after
    # dropping ALL capabilities (insecureCapabilities' fix) also satisfies linuxHardening
    also = {("root-shell", "shell", "linuxHardening"), ("log-shipper", "shipper", "linuxHardening")}
    assert failed_after == failed_before - fixed - also
    # the input is untouched
    assert (source / "pod.yaml").read_text() == (MANIFESTS / "privileged-pod.yaml").read_text()


def test_fix_to_stdout_and_in_place(capsys, tmp_path):
    target = tmp_path / "pod.yaml"
    shutil.copy(MANIFESTS / "privileged-pod.yaml", target)
    code = main(["audit", str(target), "--fix"])
    captured = capsys.readouterr()
    assert code == 1  # the exit code is the original audit's
    assert captured.out.startswith(f"# Source: {target}\n---\n")
    assert "imagePullPolicy: Always" in captured.out
    assert target.read_text() == (MANIFESTS / "privileged-pod.yaml").read_text()
    main(["audit", str(target), "--fix", "--in-place"])
    capsys.readouterr()
    _, rows, _ = _json(capsys, target)
    assert next(r for r in rows if r["check"] == "runAsPrivileged")["success"] is True
