"""Polaris's ``config.yaml``, read unchanged: severities, exemptions, custom checks.

* ``checks:`` maps check ids to ``ignore``/``warning``/``danger``. As in Polaris,
  a config that has this key replaces the default severities: a check it does
  not list is not run (custom checks run only when listed here too).
* ``exemptions:`` entries of ``namespace``, ``controllerNames`` and
  ``containerNames`` (both matched as name prefixes, as Polaris does) and
  ``rules``; an absent key matches everything.
* ``disallowExemptions`` (no exemption applies), ``disallowConfigExemptions``
  (the ``exemptions:`` entries do not apply) and ``disallowAnnotationExemptions``
  (the annotations do not apply), as Polaris reads them.
* ``customChecks:`` maps ids to check documents in Polaris's format.
* Annotations ``polaris.fairwinds.com/exempt: "true"`` and
  ``polaris.fairwinds.com/<check>-exempt: "true"`` on an object or its pod template.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.audit.checks import Check, builtin_checks, normalize_severity, parse_check
from pipeline.audit.yaml_text import Unreadable, load_documents, yaml_error_text
from pipeline.errors import AuditError

EXEMPT_ANNOTATION = "polaris.fairwinds.com/exempt"


@dataclass(frozen=True, slots=True)
class Exemption:
    namespace: str | None = None
    controller_names: tuple[str, ...] = ()
    container_names: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def covers(self, check: str, namespace: str, name: str, container: str | None) -> bool:
        if self.namespace is not None and self.namespace != (namespace or "default") and self.namespace != namespace:
            return False
        if self.controller_names and not any(name.startswith(prefix) for prefix in self.controller_names):
            return False
        if self.container_names and (container is None
                                     or not any(container.startswith(prefix) for prefix in self.container_names)):
            return False
        return not self.rules or check in self.rules


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Which checks run at which severity, and what is exempt. Immutable; build one per config file."""

    checks: tuple[Check, ...]
    severities: Mapping[str, str]
    exemptions: tuple[Exemption, ...] = ()
    source: str = field(default="(defaults)")
    #: Ids the config's ``checks:`` names that no check has (a newer or older Polaris's); not run.
    unknown_checks: tuple[str, ...] = ()
    #: Polaris's ``disallowConfigExemptions``: the ``exemptions:`` entries are not applied.
    disallow_config_exemptions: bool = False
    #: Polaris's ``disallowAnnotationExemptions``: the exempt annotations are not applied.
    disallow_annotation_exemptions: bool = False

    def severity(self, check_id: str) -> str:
        return self.severities.get(check_id, "ignore")

    def active(self) -> list[Check]:
        return [c for c in self.checks if self.severity(c.id) != "ignore"]

    def exempt(self, check: str, namespace: str, name: str, container: str | None, annotations: list[Mapping]) -> bool:
        if not self.disallow_annotation_exemptions:
            for notes in annotations:
                if str(notes.get(EXEMPT_ANNOTATION, "")).lower() == "true":
                    return True
                if str(notes.get(f"polaris.fairwinds.com/{check}-exempt", "")).lower() == "true":
                    return True
        if self.disallow_config_exemptions:
            return False
        return any(e.covers(check, namespace, name, container) for e in self.exemptions)

    def disallowing(self, config_exemptions: bool = False, annotation_exemptions: bool = False) -> "AuditConfig":
        """This config with more exemptions refused (the CLI's ``--disallow-*`` switches); never fewer."""
        return replace(
            self,
            disallow_config_exemptions=self.disallow_config_exemptions or config_exemptions,
            disallow_annotation_exemptions=self.disallow_annotation_exemptions or annotation_exemptions,
        )


def default_config() -> AuditConfig:
    checks = builtin_checks()
    return AuditConfig(checks=checks, severities={c.id: c.severity for c in checks})


def _names(entry: Mapping, key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuditError(f"{where}: {key} must be a list of names")
    return tuple(value)


def _flag(document: Mapping, key: str, source: str) -> bool:
    value = document.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise AuditError(f"{source}: {key} must be true or false, not {value!r}")
    return value


def config_from_mapping(document: Any, source: str) -> AuditConfig:
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise AuditError(f"{source}: a Polaris config must be a mapping")
    checks = list(builtin_checks())
    known = {c.id for c in checks}
    custom = document.get("customChecks") or {}
    if not isinstance(custom, dict):
        raise AuditError(f"{source}: customChecks must map check ids to checks")
    for ident, body in custom.items():
        if ident in known:
            checks = [c for c in checks if c.id != ident]  # a custom check may replace a built-in
        checks.append(parse_check(body, str(ident), f"{source}: customChecks.{ident}"))
    if "checks" in document:
        listed = document.get("checks") or {}
        if not isinstance(listed, dict):
            raise AuditError(f"{source}: checks must map check ids to severities")
        severities = {str(k): normalize_severity(v, f"{source}: checks.{k}") for k, v in listed.items()}
        ids = {c.id for c in checks}
        unknown = tuple(sorted(set(severities) - ids))
    else:
        severities = {c.id: c.severity for c in checks}
        unknown = ()
    exemptions = []
    entries = document.get("exemptions") or []
    if not isinstance(entries, list):
        raise AuditError(f"{source}: exemptions must be a list of exemptions")
    for position, entry in enumerate(entries):
        where = f"{source}: exemptions[{position}]"
        if not isinstance(entry, dict):
            raise AuditError(f"{where}: must be a mapping")
        namespace = entry.get("namespace")
        exemptions.append(Exemption(
            namespace=str(namespace) if namespace else None,
            controller_names=_names(entry, "controllerNames", where),
            container_names=_names(entry, "containerNames", where),
            rules=_names(entry, "rules", where),
        ))
    disallow_all = _flag(document, "disallowExemptions", source)
    return AuditConfig(checks=tuple(checks), severities=severities, exemptions=tuple(exemptions),
                       source=source, unknown_checks=unknown,
                       disallow_config_exemptions=disallow_all or _flag(document, "disallowConfigExemptions", source),
                       disallow_annotation_exemptions=disallow_all or _flag(document, "disallowAnnotationExemptions", source))


def load_config(path: str | Path) -> AuditConfig:
    """The config of one YAML document at ``path``; AuditError naming the file (and the line and
    column) when it cannot be read. A config nested deeper than PyYAML recurses printed a
    RecursionError traceback, one not UTF-8 a UnicodeDecodeError one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AuditError(f"{path}: cannot read config: {error}") from None
    try:
        documents = load_documents(text)
    except yaml.YAMLError as error:
        raise AuditError(f"{path}: config is not YAML: {yaml_error_text(error)}") from None
    except RecursionError:
        raise AuditError(f"{path}: config is not YAML Peregrine can read: nested too deep") from None
    if len(documents) > 1:
        raise AuditError(f"{path}: config holds {len(documents)} YAML documents; a Polaris config is one")
    document = documents[0] if documents else None
    if document.__class__ is Unreadable:
        raise AuditError(f"{path}: config is not YAML Peregrine can read: {document.message}")
    return config_from_mapping(document, str(path))
