"""deploy/: the receiver's Deployment runs the real command, the example webhook kubeconfig
points at its Service, the audit policy records what the rules need, and `peregrine audit`
passes over kubeconfigs and component configuration without reporting them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from pipeline.audit.manifests import is_config_file, read_paths, read_text
from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
POLICY = DEPLOY / "audit" / "audit-policy.yaml"
KUBECONFIG = DEPLOY / "audit" / "webhook-kubeconfig.yaml"


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _webhook_objects() -> dict[str, dict]:
    return {d["kind"]: d for d in _documents(DEPLOY / "audit-webhook.yaml")}


def test_the_deployment_runs_peregrine_webhook_with_flags_it_has(capsys):
    container = _webhook_objects()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["peregrine", "webhook"]
    assert main(["webhook", "--help"]) == 0
    help_text = capsys.readouterr().out
    flags = [arg for arg in command[2:] if arg.startswith("--")]
    assert flags and all(flag in help_text for flag in flags)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for flag in ("--token-file", "--tls-cert", "--tls-key"):
        value = command[command.index(flag) + 1]
        assert any(value.startswith(mount + "/") for mount in mounts), flag
    port = int(command[command.index("--listen") + 1].rpartition(":")[2])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}


def test_the_kubeconfig_points_at_the_receiver_service():
    config = yaml.safe_load(KUBECONFIG.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    service = _webhook_objects()["Service"]["spec"]
    assert server.scheme == "https" and server.path == "/k8s-audit"
    assert (server.hostname, server.port) == (service["clusterIP"], service["ports"][0]["port"])
    assert config["users"][0]["user"]["tokenFile"]
    assert config["current-context"] == config["contexts"][0]["name"]


def _level(policy: dict, verb: str, group: str, resource: str) -> str:
    """The level of a resource request: the first rule that matches (as the API server decides)."""
    for rule in policy["rules"]:
        if "nonResourceURLs" in rule or ("verbs" in rule and verb not in rule["verbs"]):
            continue
        if "users" in rule:
            continue  # these examples are not made by those users
        if "resources" in rule and not any(g["group"] == group and resource in g["resources"] for g in rule["resources"]):
            continue
        return rule["level"]
    return "None"


def test_the_audit_policy_records_objects_for_the_rules_and_only_metadata_for_secrets():
    policy = yaml.safe_load(POLICY.read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    for verb, group, resource in [("create", "", "pods"), ("create", "apps", "deployments"), ("patch", "apps", "daemonsets"),
                                  ("create", "rbac.authorization.k8s.io", "clusterrolebindings"), ("update", "batch", "cronjobs")]:
        assert _level(policy, verb, group, resource) == "RequestResponse", (verb, group, resource)
    for verb, group, resource in [("create", "", "secrets"), ("get", "", "secrets"), ("update", "", "configmaps"),
                                  ("create", "", "pods/exec"), ("get", "", "pods"), ("list", "apps", "deployments")]:
        assert _level(policy, verb, group, resource) == "Metadata", (verb, group, resource)
    assert _level(policy, "update", "coordination.k8s.io", "leases") == "None"


def test_config_files_are_not_kubernetes_objects():
    assert is_config_file(yaml.safe_load(KUBECONFIG.read_text()))
    assert is_config_file(yaml.safe_load(POLICY.read_text()))
    assert is_config_file({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"})
    assert is_config_file({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration"})
    assert not is_config_file({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert not is_config_file({"apiVersion": "example.com/v1", "kind": "Config"})
    assert not is_config_file({"apiVersion": "audit.k8s.io", "kind": "Policy"})  # no version: not a real group/version
    assert not is_config_file(["apiVersion"])


def test_the_audit_passes_over_config_files_and_still_reports_unknown_kinds():
    text = (KUBECONFIG.read_text() + "\n---\n" + POLICY.read_text()
            + "\n---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: w}\n"
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    manifests, problems = read_text(text, "mixed.yaml")
    assert [m.obj["kind"] for m in manifests] == ["ConfigMap"]
    assert [(p.index, p.message) for p in problems] == [(2, "unknown kind apps/v1/Deploymnet")]
    manifests, problems = read_paths([str(DEPLOY / "audit")])
    assert manifests == [] and problems == []
