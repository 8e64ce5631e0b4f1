"""Reading manifests as a Polaris user feeds them (each test failed before its fix).

* Secrets, PersistentVolumeClaims and custom resources were "unknown kinds" (exit 3) where
  Polaris reads them; a typo'd built-in kind is still reported.
* A broken YAML document said what was wrong but not where in the file.
* ``-`` (standard input, as ``polaris audit --audit-path -``) was "no such file".
* The ``--disallow-*`` switches of Polaris's command line did not exist.
"""

from __future__ import annotations

import io
import json

from audit_helpers import EXEMPTING_CONFIG, HOST_NETWORK_EXEMPT, exempt_pod

from pipeline.audit import audit_objects
from pipeline.audit.config import config_from_mapping
from pipeline.audit.manifests import read_text
from pipeline.cli.main import main


def test_disallow_exemptions_on_the_command_line(capsys, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(json.dumps(exempt_pod(HOST_NETWORK_EXEMPT)))
    config = tmp_path / "polaris.yaml"
    config.write_text(json.dumps(EXEMPTING_CONFIG))

    def failed(*switches):
        main(["audit", str(manifest), "-c", str(config), "-f", "json", *switches])
        return {r["check"] for r in json.loads(capsys.readouterr().out) if not r["success"]}

    assert failed() == set()
    assert failed("--disallow-exemptions") == {"hostNetworkSet", "runAsRootAllowed"}
    assert failed("--disallow-config-exemptions") == {"runAsRootAllowed"}
    assert failed("--disallow-annotation-exemptions") == {"hostNetworkSet"}


CHART = """\
# Source: shop/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata: {name: shop-db}
stringData: {password: hunter2}
---
# Source: shop/templates/pvc.yaml
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shop-data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
# Source: shop/templates/servicemonitor.yaml
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: shop}
spec: {endpoints: [{port: http}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
"""


def test_builtin_kinds_and_custom_resources_are_read_without_a_problem():
    manifests, problems = read_text(CHART, "chart.yaml")
    assert [m.obj["kind"] for m in manifests] == ["Secret", "PersistentVolumeClaim", "ServiceMonitor",
                                                  "CustomResourceDefinition"]
    assert problems == []
    _, problems = read_text("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: web}\n", "typo.yaml")
    assert [str(p) for p in problems] == ["typo.yaml: document 0: unknown kind apps/v1/Deploymnet"]


def test_a_chart_with_secrets_and_custom_resources_exits_clean(capsys, tmp_path):
    chart = tmp_path / "chart.yaml"
    chart.write_text(CHART)
    assert main(["audit", str(chart)]) == 0
    assert "unreadable" not in capsys.readouterr().out


def test_a_custom_check_can_target_a_custom_resource():
    document = {"checks": {"monitorHasInterval": "warning"}, "customChecks": {"monitorHasInterval": {
        "successMessage": "ok", "failureMessage": "Endpoints should set an interval", "category": "Reliability",
        "target": "monitoring.coreos.com/ServiceMonitor",
        "schema": {"properties": {"spec": {"properties": {"endpoints": {"items": {"required": ["interval"]}}}}}},
    }}}
    manifests, _ = read_text(CHART, "chart.yaml")
    findings = audit_objects([m.obj for m in manifests], config_from_mapping(document, "polaris.yaml"))
    assert [(f.kind, f.name, f.success) for f in findings] == [("ServiceMonitor", "shop", False)]


def test_broken_yaml_names_its_line_in_the_file():
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n# Source: web.yaml\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n"
            "  - name: web\n    image: \"nginx:1.25\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    manifests, problems = read_text(text, "helm.yaml")
    assert [m.obj["metadata"]["name"] for m in manifests] == ["ok", "s"]
    assert [str(p) for p in problems] == [
        "helm.yaml: document 1: not YAML: while scanning a quoted scalar at line 12, column 12; "
        "found unexpected end of stream at line 13, column 1"]


def test_standard_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(exempt_pod())))
    assert main(["audit", "-", "-f", "json"]) == 1  # hostNetworkSet is a danger
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"dns-controller-7d9"} and {r["file"] for r in rows} == {"-"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(exempt_pod())))
    assert main(["audit", "-", "--fix"]) == 2
    assert "--fix rewrites files: save standard input to a file and fix that" in capsys.readouterr().err
