"""Realistic K8s audit events (audit.k8s.io/v1, as kube-apiserver's webhook backend posts them)
carrying workloads, for the live audit tests."""

from __future__ import annotations

import copy
from typing import Any

GROUPS = {"pods": ("", "v1"), "deployments": ("apps", "v1"), "clusterroles": ("rbac.authorization.k8s.io", "v1"),
          "replicasets": ("apps", "v1"), "configmaps": ("", "v1"), "cronjobs": ("batch", "v1")}
CODES = {"create": 201, "update": 200, "patch": 200, "delete": 200, "get": 200, "list": 200, "watch": 200}


def hardened_pod_spec() -> dict:
    """A pod spec every live Polaris check passes, as the API server stores it (defaults filled in)."""
    return {
        "priorityClassName": "high",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}],
        "containers": [{
            "name": "api",
            "image": "registry.example:5000/shop/api:1.4.2",
            "imagePullPolicy": "Always",
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }


def hardened_pod(name: str = "api", namespace: str = "shop") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": "0b6f1a8e-5d2c-4c1e-9d0e-7f1b2c3d4e5f",
            "resourceVersion": "48213", "creationTimestamp": "2024-05-01T12:00:01Z",
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name},
        },
        "spec": hardened_pod_spec(),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def privileged_pod(name: str = "debug", namespace: str = "shop") -> dict:
    """The hardened pod with its container made privileged (and nothing else changed)."""
    pod = hardened_pod(name, namespace)
    pod["spec"]["containers"][0]["name"] = "shell"
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    return pod


def hardened_deployment(name: str = "api", namespace: str = "shop") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 2, "resourceVersion": "50117",
                     "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": hardened_pod_spec()},
        },
        "status": {"observedGeneration": 1, "replicas": 3},
    }


def audit_event(
    verb: str,
    resource: str,
    *,
    name: str,
    namespace: str | None = "shop",
    request: Any = None,
    response: Any = None,
    user: str = "alice@example.com",
    audit_id: str = "7d0b6a52-3c1e-4b8f-9e2a-00000000a001",
    level: str = "RequestResponse",
    stage: str = "ResponseComplete",
    code: int | None = None,
    subresource: str | None = None,
    query: str = "fieldManager=kubectl-client-side-apply",
) -> dict:
    group, version = GROUPS[resource]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    path = f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"
    if verb not in ("create", "list"):
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    ref = {"resource": resource, "name": name, "apiVersion": version}
    if namespace:
        ref["namespace"] = namespace
    if group:
        ref["apiGroup"] = group
    if subresource:
        ref["subresource"] = subresource
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": audit_id,
        "stage": stage,
        "requestURI": f"{path}?{query}" if query else path,
        "verb": verb,
        "user": {"username": user, "uid": "u-1001", "groups": ["developers", "system:authenticated"]},
        "sourceIPs": ["192.0.2.44"],
        "userAgent": "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code if code is not None else CODES.get(verb, 200)},
        "requestReceivedTimestamp": "2024-05-01T12:00:01.101000Z",
        "stageTimestamp": "2024-05-01T12:00:01.123456Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"dev/shop\" of ClusterRole \"edit\""},
    }
    if level in ("Request", "RequestResponse") and request is not None:
        event["requestObject"] = copy.deepcopy(request)
    if level == "RequestResponse" and response is not None:
        event["responseObject"] = copy.deepcopy(response)
    return event


def as_request(obj: dict) -> dict:
    """What kubectl sends for an object: no status, uid, resourceVersion or defaults added by the server."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        out["metadata"].pop(key, None)
    return out
