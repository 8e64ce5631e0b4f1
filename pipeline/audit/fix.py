"""Apply the JSON-patch ``mutations`` of failed checks to the manifests they came from.

A mutation's path is relative to the check's target (the container, the pod
spec or the object), so it is prefixed with the finding's pointer. Patches are
applied leniently, the way a fix should be: ``add``/``replace`` create missing
parent mappings and ``remove`` of an absent member does nothing (RFC 6902 would
fail on both, which would leave the manifest unfixed for no good reason).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from pipeline.audit.checks import Check
from pipeline.audit.evaluate import Finding
from pipeline.audit.manifests import Manifest
from pipeline.audit.yaml_text import yaml_error_text
from pipeline.errors import AuditError


def _tokens(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    if not pointer.startswith("/"):
        raise AuditError(f"JSON pointer {pointer!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _child(container: Any, token: str, create: bool) -> Any:
    if isinstance(container, list):
        if not token.isdigit():  # a list where the check expects a mapping: a malformed manifest
            return None
        index = int(token)
        return container[index] if index < len(container) else None
    if isinstance(container, dict):
        if token not in container or container[token] is None:
            if not create:
                return None
            container[token] = {}
        return container[token]
    return None


def apply_patch(document: dict, operation: dict, prefix: str = "") -> bool:
    """Apply one JSON-patch operation in place, at ``prefix`` + its path. False when the
    document has no place for it (a scalar or a list where the path needs a mapping: a
    malformed manifest), which is then left as it is."""
    tokens = _tokens(prefix) + _tokens(operation["path"])
    if not tokens:
        raise AuditError("a mutation cannot replace the whole object")
    op = operation["op"]
    parent: Any = document
    for token in tokens[:-1]:
        parent = _child(parent, token, create=op != "remove")
        if parent is None:
            return op == "remove"  # nothing there to remove
    last = tokens[-1]
    if op == "remove":
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            del parent[int(last)]
        return True
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, dict):
        parent[last] = value
        return True
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
            return True
        if last.isdigit() and op == "add":
            parent.insert(int(last), value)
            return True
        if last.isdigit() and int(last) < len(parent):
            parent[int(last)] = value
            return True
    return False


def fix_objects(objects: list[dict], findings: Iterable[Finding], checks: Iterable[Check]) -> tuple[list[dict], list[Finding]]:
    """Copies of ``objects`` with every failed finding's mutations applied, and the findings fixed
    (those whose every mutation found its place).

    Each (check, object, target) is fixed once, in the order the findings come."""
    by_id = {c.id: c for c in checks}
    fixed = [copy.deepcopy(o) for o in objects]
    applied: list[Finding] = []
    seen: set[tuple[str, int, str]] = set()
    for finding in findings:
        check = by_id.get(finding.check)
        if finding.success or check is None or not check.mutations:
            continue
        key = (finding.check, finding.object_index, finding.pointer)
        if key in seen:
            continue
        seen.add(key)
        done = [apply_patch(fixed[finding.object_index], operation, finding.pointer) for operation in check.mutations]
        if all(done):
            applied.append(finding)
    return fixed, applied


@dataclass(frozen=True, slots=True)
class FixedFile:
    path: str
    text: str


def render_files(manifests: list[Manifest], fixed: list[dict]) -> list[FixedFile]:
    """The fixed objects put back into their files' documents (other documents unchanged).

    Comments and formatting are not kept: the files are dumped from data."""
    by_file: dict[str, list[tuple[Manifest, dict]]] = defaultdict(list)
    for manifest, obj in zip(manifests, fixed):
        by_file[manifest.path].append((manifest, obj))
    out = []
    for path, pairs in by_file.items():
        try:
            documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as error:
            # the file is dumped from its documents: without them, only the fixed objects would be
            # written back, and --in-place dropped every other document of the file (RecursionError:
            # a traceback, nested deeper than PyYAML's parser recurses)
            why = yaml_error_text(error) if isinstance(error, yaml.YAMLError) else \
                "nested too deep" if isinstance(error, RecursionError) else str(error)
            raise AuditError(f"{path}: --fix cannot rewrite a file with a document it cannot read ({why}); "
                             "fix or remove that document first, or audit the file without --fix") from None
        for manifest, obj in pairs:
            if manifest.item is None:
                documents[manifest.index] = obj
            else:
                documents[manifest.index]["items"][manifest.item] = obj
        kept = [d for d in documents if d is not None]
        out.append(FixedFile(path, yaml.safe_dump_all(kept, sort_keys=False, default_flow_style=False)))
    return out
