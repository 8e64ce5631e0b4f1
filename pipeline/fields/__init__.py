"""Typed field registries, one per event source: what a rule may read from an event.

``registry_for(source)`` gives a source's :class:`FieldRegistry`;
``detect_source(event)`` tells which source a raw event comes from:

- a K8s audit Event: ``kind == "Event"`` and ``apiVersion`` starting ``audit.k8s.io/``;
- a CloudTrail record: ``eventVersion``, ``eventSource`` and ``eventName``;
- a syscall event: a flat object with ``evt.type`` (or any ``proc.``/``fd.``/
  ``container.``/``evt.`` key);
- a Falco alert (``output_fields`` plus ``rule``/``source``): not detected
  here; use :func:`unwrap_falco_alert` first, which returns its
  ``output_fields`` (flat, like a syscall event) and the alert's source.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pipeline.errors import PeregrineError
from pipeline.fields.registry import FieldRegistry

SOURCES = ("syscall", "k8s_audit", "aws_cloudtrail")
_FALCO_SOURCES = {"syscall": "syscall", "k8s_audit": "k8s_audit", "aws_cloudtrail": "aws_cloudtrail"}
_SYSCALL_PREFIXES = ("evt.", "proc.", "fd.", "container.", "thread.", "user.", "k8s.")


class UnknownSource(PeregrineError, LookupError):
    """A source name no registry is declared for."""


@lru_cache(maxsize=None)
def registry_for(source: str) -> FieldRegistry:
    if source == "syscall":
        from pipeline.fields import syscall

        return syscall.registry()
    if source == "k8s_audit":
        from pipeline.fields import k8s_audit

        return k8s_audit.registry()
    if source == "aws_cloudtrail":
        from pipeline.fields import cloudtrail

        return cloudtrail.registry()
    raise UnknownSource(f"unknown event source '{source}'; known sources: {', '.join(SOURCES)}")


def detect_source(event: Any) -> str | None:
    """The source of a raw event, or None when it is none of the known shapes."""
    if event.__class__ is not dict:
        return None
    if event.get("kind") == "Event" and str(event.get("apiVersion", "")).startswith("audit.k8s.io/"):
        return "k8s_audit"
    if "eventVersion" in event and "eventSource" in event and "eventName" in event:
        return "aws_cloudtrail"
    if "evt.type" in event:
        return "syscall"
    for key in event:
        if key.__class__ is str and key.startswith(_SYSCALL_PREFIXES):
            return "syscall"
    return None


def unwrap_falco_alert(event: Any) -> tuple[dict, str] | None:
    """``(output_fields, source)`` for a Falco alert JSON, else None.

    Only syscall alerts carry enough to re-evaluate (their output_fields are a
    flat syscall event); a plugin alert's output_fields are just the printed
    fields, so they are returned with their source for display only."""
    if event.__class__ is not dict or event.get("output_fields").__class__ is not dict or "rule" not in event:
        return None
    source = _FALCO_SOURCES.get(str(event.get("source", "syscall")), "syscall")
    return event["output_fields"], source


__all__ = ["SOURCES", "UnknownSource", "detect_source", "registry_for", "unwrap_falco_alert"]
