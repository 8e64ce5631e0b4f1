"""Check documents: one YAML file per check, in Polaris's format.

A check says what it looks at (``target``: Container, PodSpec, Controller, or
an API kind such as ``policy/PodDisruptionBudget``), a JSON Schema the target
must satisfy, its messages, category and default severity, which controllers
and containers it applies to, and an optional JSON-patch ``mutations`` fix.

Polaris relates objects with Go templates in ``additionalSchemas``; Peregrine's
built-in checks name a ``lookup`` instead (a Python function in
:mod:`pipeline.audit.lookups`), and their schema then validates
``{"object": <target>, "related": <what the lookup found>}`` so the assertion
stays in the schema. Polaris custom checks with ``additionalSchemas`` and the
simple ``{{ .a.b }}`` substitutions work too (see :mod:`pipeline.audit.template`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline.audit.schema_ext import PolarisValidator, schema_problem
from pipeline.audit.template import has_template, render_schema, render_text, template_problem
from pipeline.errors import AuditError

REPO_ROOT = Path(__file__).resolve().parents[2]
# The check documents and their schema live beside the package in a checkout;
# an installed copy (e.g. the worker image) says where with these variables.
BUILTIN_CHECKS_DIR = Path(os.environ.get("PEREGRINE_CHECKS_DIR") or REPO_ROOT / "rules" / "checks")
CHECK_SCHEMA_PATH = Path(os.environ.get("PEREGRINE_CHECK_SCHEMA") or REPO_ROOT / "schemas" / "check.schema.json")

SEVERITIES = ("ignore", "warning", "danger")
POD_TARGETS = ("Container", "PodSpec", "Controller")


def normalize_severity(value: Any, where: str) -> str:
    """Polaris severities; ``error`` is Polaris's older name for ``danger``."""
    text = str(value).strip().lower() if value is not None else ""
    if text == "error":
        return "danger"
    if text not in SEVERITIES:
        raise AuditError(f"{where}: severity {value!r} is not one of ignore, warning, danger")
    return text


@dataclass(frozen=True, slots=True)
class Check:
    """One check, ready to evaluate. ``schema`` is None when it is templated
    (rendered per object from ``schema_text``/``schema_source``)."""

    id: str
    success_message: str
    failure_message: str
    category: str
    target: str
    severity: str = "warning"
    schema_target: str | None = None
    controllers_include: tuple[str, ...] = ()
    controllers_exclude: tuple[str, ...] = ()
    containers_exclude: tuple[str, ...] = ()
    mutations: tuple[dict, ...] = ()
    lookup: str | None = None
    source: str = ""
    schema_source: Any = field(default=None, repr=False, compare=False)
    schema_text: str | None = field(default=None, repr=False, compare=False)
    additional: tuple[tuple[str, Any, str | None], ...] = field(default=(), repr=False, compare=False)
    validator: Any = field(default=None, repr=False, compare=False)

    @property
    def templated(self) -> bool:
        return self.validator is None

    def validator_for(self, data: dict) -> Any:
        """The compiled schema, rendered against ``data`` when the check is templated."""
        if self.validator is not None:
            return self.validator
        schema = render_text(self.schema_text, data) if self.schema_text is not None else render_schema(self.schema_source, data)
        return PolarisValidator(schema)


@lru_cache(maxsize=1)
def _document_validator() -> Any:
    from jsonschema import Draft201909Validator

    try:
        schema = json.loads(CHECK_SCHEMA_PATH.read_text(encoding="utf-8"))
    except OSError as error:
        raise AuditError(f"{CHECK_SCHEMA_PATH}: cannot read the check document schema ({error}); "
                         "set PEREGRINE_CHECK_SCHEMA to its path") from None
    return Draft201909Validator(schema)


def parse_check(document: Any, check_id: str | None, source: str) -> Check:
    """Build a Check from a parsed document; AuditError naming ``source`` when it is wrong."""
    if not isinstance(document, dict):
        raise AuditError(f"{source}: a check must be a mapping, got {type(document).__name__}")
    errors = sorted(_document_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise AuditError(f"{source}: {where}: {first.message}")
    ident = document.get("id") or check_id
    if not ident:
        raise AuditError(f"{source}: the check has no id")
    if check_id and document.get("id") and document["id"] != check_id:
        raise AuditError(f"{source}: id {document['id']!r} does not match the file name {check_id!r}")

    schema_source, schema_text = _schema_of(document, source)
    validator = None
    if schema_text is None and not has_template(schema_source):
        problem = schema_problem(schema_source)
        if problem:
            raise AuditError(f"{source}: check {ident}: {problem}")
        validator = PolarisValidator(schema_source)
    else:
        problem = template_problem(schema_text if schema_text is not None else schema_source)
        if problem:
            raise AuditError(f"{source}: check {ident}: {problem}")
        rendered = render_text(schema_text, {}) if schema_text is not None else render_schema(schema_source, {})
        problem = schema_problem(rendered)
        if problem:
            raise AuditError(f"{source}: check {ident}: {problem}")

    additional = []
    for kind, schema in (document.get("additionalSchemas") or {}).items():
        additional.append(_additional(ident, kind, schema, None, source))
    for kind, text in (document.get("additionalSchemaStrings") or {}).items():
        additional.append(_additional(ident, kind, None, text, source))

    controllers = document.get("controllers") or {}
    containers = document.get("containers") or {}
    return Check(
        id=ident,
        success_message=document["successMessage"],
        failure_message=document.get("failureMessage") or document.get("FailureMessage") or "",
        category=document["category"],
        target=document["target"],
        severity=normalize_severity(document.get("severity", "warning"), source),
        schema_target=document.get("schemaTarget") or None,
        controllers_include=tuple(controllers.get("include") or ()),
        controllers_exclude=tuple(controllers.get("exclude") or ()),
        containers_exclude=tuple(containers.get("exclude") or ()),
        mutations=tuple(document.get("mutations") or ()),
        lookup=document.get("lookup"),
        source=source,
        schema_source=schema_source,
        schema_text=schema_text,
        additional=tuple(additional),
        validator=validator,
    )


def _schema_of(document: dict, source: str) -> tuple[Any, str | None]:
    """The schema as a mapping, or (for a templated ``schemaString``) its text."""
    if "schema" in document:
        return document["schema"], None
    if "jsonSchema" in document:
        try:
            return json.loads(document["jsonSchema"]), None
        except json.JSONDecodeError as error:
            raise AuditError(f"{source}: jsonSchema is not JSON: {error}") from None
    text = document.get("schemaString")
    if text is None:
        raise AuditError(f"{source}: the check has no schema (schema, schemaString or jsonSchema)")
    if has_template(text):
        return None, text
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as error:
        raise AuditError(f"{source}: schemaString is not YAML: {error}") from None


def _additional(ident: str, kind: str, schema: Any, text: str | None, source: str) -> tuple[str, Any, str | None]:
    body = text if text is not None else schema
    problem = template_problem(body)
    if problem is None:
        rendered = render_text(text, {}) if text is not None else render_schema(schema, {})
        problem = schema_problem(rendered)
    if problem:
        raise AuditError(f"{source}: check {ident}: additional schema for {kind}: {problem}")
    return kind, schema, text


def load_check_file(path: Path) -> Check:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AuditError(f"{path}: cannot read check: {error}") from None
    return parse_check(document, path.stem, str(path))


def load_checks(directory: Path = BUILTIN_CHECKS_DIR) -> tuple[Check, ...]:
    """Every ``<id>.yaml`` in ``directory``, sorted by id."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise AuditError(f"{directory}: no check documents (*.yaml); set PEREGRINE_CHECKS_DIR to rules/checks")
    return tuple(load_check_file(path) for path in files)


@lru_cache(maxsize=1)
def builtin_checks() -> tuple[Check, ...]:
    return load_checks(BUILTIN_CHECKS_DIR)
