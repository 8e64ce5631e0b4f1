"""Read Kubernetes manifests (multi-document YAML) into objects with their origin.

A document that is not YAML (its line is named), not a Kubernetes object, or of
a kind no Kubernetes API group serves (``apps/v1`` ``Deploymnet``) is a
:class:`Problem` (file and document index), and reading goes on: one bad
document must not hide the findings of the others. Objects of any other kind
(a Secret, a PersistentVolumeClaim, a custom resource) are read: checks that
target their kind judge them, as in Polaris, and the rest pass over them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.audit.yaml_text import Unreadable, load_documents, yaml_error_text
from pipeline.errors import AuditError

#: Workloads: their pod templates are audited.
WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"})
#: Other kinds checks target or look up; known kinds without checks are read without a problem.
OTHER_KINDS = frozenset({
    "Service", "Ingress", "ConfigMap", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
    "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceAccount", "Namespace",
    "PriorityClass",
})
#: Kinds of Kubernetes's own API groups that manifests carry but no built-in check targets.
UNCHECKED_BUILTIN_KINDS = frozenset({
    "Secret", "PersistentVolume", "PersistentVolumeClaim", "Endpoints", "LimitRange", "ResourceQuota",
    "PodTemplate", "Node", "Event", "Binding", "ComponentStatus", "ControllerRevision", "PodSecurityPolicy",
    "IngressClass", "IPAddress", "ServiceCIDR", "StorageClass", "VolumeAttachment", "CSIDriver", "CSINode",
    "CSIStorageCapacity", "VolumeAttributesClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "CustomResourceDefinition", "APIService", "CertificateSigningRequest",
    "ClusterTrustBundle", "Lease", "LeaseCandidate", "EndpointSlice", "FlowSchema", "PriorityLevelConfiguration",
    "RuntimeClass", "ResourceClaim", "ResourceClaimTemplate", "DeviceClass", "ResourceSlice", "StorageVersionMigration",
})
KNOWN_KINDS = WORKLOAD_KINDS | OTHER_KINDS | UNCHECKED_BUILTIN_KINDS
#: API groups Kubernetes itself serves ("" is the core group): a kind there that is not a
#: known kind is a typo. Every other group is a custom resource's, read whatever its kind.
BUILTIN_API_GROUPS = frozenset({
    "", "apps", "batch", "policy", "autoscaling", "extensions", "rbac.authorization.k8s.io", "networking.k8s.io",
    "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "node.k8s.io", "scheduling.k8s.io", "resource.k8s.io",
    "storagemigration.k8s.io", "internal.apiserver.k8s.io",
})
#: The path that stands for standard input (``helm template . | peregrine audit -``).
STDIN = "-"
#: Files that live beside manifests but are read by a component, never sent to the API
#: server: component configuration (the API server's audit Policy, admission and encryption
#: configs, the kubelet's, kube-proxy's, the scheduler's, kubeadm's) and kubeconfigs
#: (``v1`` ``Config``). Polaris passes over them; so does the audit, without a problem.
CONFIG_FILE_GROUPS = frozenset({
    "audit.k8s.io", "apiserver.config.k8s.io", "apiserver.k8s.io", "kubelet.config.k8s.io",
    "kubeproxy.config.k8s.io", "kubescheduler.config.k8s.io", "kubecontrollermanager.config.k8s.io",
    "kubeadm.k8s.io", "client.authentication.k8s.io", "pod-security.admission.config.k8s.io",
    "eventratelimit.admission.k8s.io",
})


@dataclass(frozen=True, slots=True)
class Manifest:
    """One object and where it came from (``index`` is the 0-based document index;
    ``item`` the index inside a ``List`` document, else None)."""

    obj: dict
    path: str
    index: int
    item: int | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    index: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.index is None else f"{self.path}: document {self.index}"
        return f"{where}: {self.message}"


def manifest_files(paths: list[str]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml / *.yml files, recursively, sorted;
    ``-`` stands for standard input."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if raw == STDIN:
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise AuditError(f"{raw}: no such file or directory")
    return files


def is_config_file(document: Any) -> bool:
    """A kubeconfig or a component's configuration, not a Kubernetes object."""
    if not isinstance(document, dict):
        return False
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return False
    if api_version == "v1" and kind == "Config":
        return True
    group, slash, _ = api_version.partition("/")
    return bool(slash) and group in CONFIG_FILE_GROUPS


def object_problem(obj: Any) -> str | None:
    """Why a parsed document is not an object the audit can read, or None."""
    if not isinstance(obj, dict):
        return f"not a Kubernetes object (a {type(obj).__name__})"
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return "not a Kubernetes object (no apiVersion/kind)"
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return f"{obj['kind']} has no metadata.name"
    group = obj["apiVersion"].rpartition("/")[0]
    if obj["kind"] not in KNOWN_KINDS and group in BUILTIN_API_GROUPS:
        return f"unknown kind {obj['apiVersion']}/{obj['kind']}"
    return None


def read_text(text: str, path: str) -> tuple[list[Manifest], list[Problem]]:
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    try:
        documents = load_documents(text)
    except (yaml.YAMLError, RecursionError) as error:
        # Keep the documents before the broken one: split on separators and parse each.
        return _read_split(text, path, error)
    for index, document in enumerate(documents):
        _add(document, path, index, manifests, problems)
    return manifests, problems


#: A document separator line, alone or followed by a comment.
_SEPARATOR = re.compile(r"(?m)^---[ \t]*(?:#.*)?$")


def _chunks(text: str) -> list[tuple[int, str]]:
    """The text between separators, each with the 0-based file line it starts on."""
    chunks: list[tuple[int, str]] = []
    start = 0
    for separator in _SEPARATOR.finditer(text):
        chunks.append((text.count("\n", 0, start), text[start:separator.start()]))
        start = separator.end() + 1  # past the separator line's newline
    chunks.append((text.count("\n", 0, start), text[start:]))
    return chunks


def _read_split(text: str, path: str, error: Exception) -> tuple[list[Manifest], list[Problem]]:
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    index = 0
    for first_line, chunk in _chunks(text):
        try:
            loaded = load_documents(chunk, first_line)
            if len(loaded) > 1:  # a separator this split does not see ('--- {...}'): not one document to name
                raise yaml.YAMLError(f"more than one document from line {first_line + 1} (a '---' with content on its line?)")
            document = loaded[0] if loaded else None
        except yaml.YAMLError as chunk_error:
            problems.append(Problem(path, index, f"not YAML: {yaml_error_text(chunk_error, first_line)}"))
            index += 1
            continue
        except RecursionError:  # PyYAML's parser recurses once per level
            problems.append(Problem(path, index, f"not YAML Peregrine can read: nested too deep (from line {first_line + 1})"))
            index += 1
            continue
        if document is None and not chunk.strip():
            if index == 0:
                continue  # a leading separator
        _add(document, path, index, manifests, problems)
        index += 1
    if not problems:
        problems.append(Problem(path, None, f"not YAML: {yaml_error_text(error)}"))
    return manifests, problems


def _add(document: Any, path: str, index: int, manifests: list[Manifest], problems: list[Problem]) -> None:
    if document is None:
        return  # an empty document, as between two '---'
    if document.__class__ is Unreadable:
        problems.append(Problem(path, index, f"not YAML Peregrine can read: {document.message}"))
        return
    if is_config_file(document):
        return  # not an object the API server stores: nothing to audit, nothing wrong
    if isinstance(document, dict) and isinstance(document.get("kind"), str) and document["kind"].endswith("List") \
            and isinstance(document.get("items"), list):
        for item_index, item in enumerate(document["items"]):
            problem = object_problem(item)
            if problem:
                problems.append(Problem(path, index, f"item {item_index}: {problem}"))
            else:
                manifests.append(Manifest(item, path, index, item_index))
        return
    problem = object_problem(document)
    if problem:
        problems.append(Problem(path, index, problem))
    else:
        manifests.append(Manifest(document, path, index))


def read_paths(paths: list[str]) -> tuple[list[Manifest], list[Problem]]:
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    for file in manifest_files(paths):
        try:
            text = sys.stdin.read() if str(file) == STDIN else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(str(file), None, f"cannot read: {error}"))
            continue
        found, bad = read_text(text, str(file))
        manifests.extend(found)
        problems.extend(bad)
    return manifests, problems
