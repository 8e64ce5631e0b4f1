"""Every PEREGRINE_* setting the shipped deployment files set is one Peregrine reads: the
Kubernetes ConfigMap once set PEREGRINE_RULES_DIR, PEREGRINE_STATE_DIR and PEREGRINE_LOG_LEVEL,
which nothing read, so the worker kept its RocksDB state in a 256Mi /tmp instead of its 4Gi
volume."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]


def read_settings() -> set[str]:
    """PipelineSettings' fields (PEREGRINE_<FIELD>), and every PEREGRINE_* name the code spells out."""
    names = {f"PEREGRINE_{field.name.upper()}" for field in dataclasses.fields(PipelineSettings)}
    for path in (ROOT / "pipeline").rglob("*.py"):
        names |= set(re.findall(r"PEREGRINE_[A-Z0-9_]+", path.read_text()))
    webhook = (ROOT / "pipeline" / "webhook" / "settings.py").read_text()  # get("LISTEN") reads PEREGRINE_WEBHOOK_LISTEN
    names |= {f"PEREGRINE_WEBHOOK_{name}" for name in re.findall(r'(?:get|number|seconds)\("([A-Z_]+)"', webhook)}
    return names


def test_the_kubernetes_configmap_sets_only_what_peregrine_reads():
    config = yaml.safe_load((ROOT / "deploy/k8s/configmap.yaml").read_text())
    assert set(config["data"]) <= read_settings()
    assert config["data"]["PEREGRINE_DATA_DIR"] == "/var/lib/peregrine"  # the worker's state volume
    worker = next(doc for doc in yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text()) if doc["kind"] == "Deployment")
    mounts = worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "state", "mountPath": "/var/lib/peregrine"} in mounts


def test_the_compose_file_sets_only_what_peregrine_reads():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        keys = set(environment) if isinstance(environment, dict) else {item.split("=", 1)[0] for item in environment}
        assert {k for k in keys if k.startswith("PEREGRINE_")} <= read_settings(), name


def test_the_namespace_is_applied_before_what_lives_in_it():
    """`kubectl apply -f deploy/k8s/` takes the files in name order."""
    files = sorted(p.name for p in (ROOT / "deploy/k8s").glob("*.yaml"))
    assert files[0] == "00-namespace.yaml"
    assert any(doc and doc.get("kind") == "Namespace" for doc in yaml.safe_load_all((ROOT / "deploy/k8s" / files[0]).read_text()))


def test_the_webhook_deployment_sets_only_what_it_reads():
    deployment = next(doc for doc in yaml.safe_load_all((ROOT / "deploy/k8s/audit-webhook.yaml").read_text())
                      if doc and doc["kind"] == "Deployment")
    env = {item["name"]: item["value"] for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert {"PEREGRINE_WEBHOOK_MAX_BODY_BYTES", "PEREGRINE_WEBHOOK_MAX_CONCURRENT"} <= set(env) <= read_settings()
