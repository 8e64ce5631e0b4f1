"""The part of Polaris's Go templates that a data-only evaluator can honour.

Polaris renders check schemas with Go's text/template against the object under
audit (``{{ .metadata.name }}``, ``{{ .Polaris.PodSpec.serviceAccountName }}``).
Peregrine supports plain field substitutions, which is what custom checks use
to relate objects by name; control flow (``if``, ``range``, pipelines) is
refused at load with a message, since built-in checks express those relations
with Python lookups instead.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pipeline.errors import AuditError

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_FIELD = re.compile(r"^\.(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?$")


def has_template(node: Any) -> bool:
    if isinstance(node, str):
        return "{{" in node
    if isinstance(node, dict):
        return any(has_template(k) or has_template(v) for k, v in node.items())
    if isinstance(node, list):
        return any(has_template(v) for v in node)
    return False


def template_problem(node: Any) -> str | None:
    """Why a templated schema cannot be rendered here, or None."""
    texts = [node] if isinstance(node, str) else list(_strings(node))
    for text in texts:
        for action in _ACTION.findall(text):
            if not _FIELD.match(action):
                return f"template action {{{{ {action} }}}} is not supported (only field substitutions like {{{{ .metadata.name }}}})"
    return None


def _strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _lookup(data: Any, expression: str) -> str:
    value: Any = data
    for part in [p for p in expression[1:].split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


def _substitute(text: str, data: dict) -> str:
    return _ACTION.sub(lambda m: _lookup(data, m.group(1)), text)


def render_schema(node: Any, data: dict) -> Any:
    """A copy of a schema mapping with every string's substitutions filled in."""
    if isinstance(node, str):
        return _substitute(node, data)
    if isinstance(node, dict):
        return {render_schema(k, data): render_schema(v, data) for k, v in node.items()}
    if isinstance(node, list):
        return [render_schema(v, data) for v in node]
    return node


def render_text(text: str, data: dict) -> Any:
    """Render a ``schemaString`` and parse it as YAML, as Polaris does."""
    try:
        return yaml.safe_load(_substitute(text, data))
    except yaml.YAMLError as error:
        raise AuditError(f"templated schema is not YAML once rendered: {error}") from None
