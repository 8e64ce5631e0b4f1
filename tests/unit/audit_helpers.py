"""Shared helpers for the audit tests: load fixture manifests, index findings."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d is not None]


def failed(findings, name: str | None = None, container: str | None = "*") -> set[str]:
    """Ids of failed checks, optionally for one object name and one container (None = pod level)."""
    return {
        f.check for f in findings
        if not f.success and (name is None or f.name == name) and (container == "*" or f.container == container)
    }


def result(findings, check: str, name: str, container: str | None = None) -> bool:
    """The single verdict of ``check`` on object ``name`` (and container)."""
    matches = [f for f in findings if f.check == check and f.name == name and f.container == container]
    assert len(matches) == 1, f"{check} on {name}/{container}: {len(matches)} findings"
    return matches[0].success


def exempt_pod(annotations=None, containers=None, host_network=True) -> dict:
    """A kube-system Pod of the dns-controller, on the host network (what the exemption tests audit)."""
    metadata = {"name": "dns-controller-7d9", "namespace": "kube-system"}
    if annotations:
        metadata["annotations"] = annotations
    spec = {"containers": containers or [{"name": "sidecar-istio-proxy", "image": "istio/proxyv2:1.20"}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


EXEMPTING_CONFIG = {
    "checks": {"hostNetworkSet": "danger", "runAsRootAllowed": "danger"},
    "exemptions": [{"namespace": "kube-system", "controllerNames": ["dns-controller"], "rules": ["runAsRootAllowed"]}],
}
HOST_NETWORK_EXEMPT = {"polaris.fairwinds.com/hostNetworkSet-exempt": "true"}
