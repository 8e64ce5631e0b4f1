"""Rule + event -> :class:`Alert`, with each rule's output format compiled once."""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from pipeline.alerts.alert import Alert
from pipeline.alerts.falco_json import alert_uuid, event_time_ns
from pipeline.alerts.output import OutputFormat, clock_ns
from pipeline.fields.registry import FieldRegistry


def default_hostname() -> str:
    """FALCO_HOSTNAME, as Falco honours it, else this host's name."""
    return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


class AlertBuilder:
    """Builds alerts; caches one :class:`OutputFormat` per (source, output text)."""

    def __init__(self, registry_for: Callable[[str], FieldRegistry] | None = None, hostname: str | None = None) -> None:
        if registry_for is None:
            from pipeline.fields import registry_for as default  # type: ignore[attr-defined]

            registry_for = default
        self._registry_for = registry_for
        self.hostname = hostname if hostname is not None else default_hostname()
        self._formats: dict[tuple[str, str], OutputFormat] = {}

    def output_format(self, source: str, text: str) -> OutputFormat:
        key = (source, text)
        found = self._formats.get(key)
        if found is None:
            try:
                registry = self._registry_for(source)
            except LookupError:
                registry = None
            found = self._formats[key] = OutputFormat(text.strip(), registry)
        return found

    def build(self, rule: Any, event: Any, source: str) -> Alert:
        """``rule``: the loader's Rule (name, output, priority, tags)."""
        time_ns = event_time_ns(event, source)
        message, fields = self.output_format(source, rule.output).render(event, time_ns)
        fields.setdefault("evt.time", time_ns)  # Falco's prefix field
        priority = rule.priority
        return Alert(
            uuid=alert_uuid(event, rule.name),
            time_ns=time_ns,
            rule=rule.name,
            priority=priority,
            source=source,
            output=f"{clock_ns(time_ns)}: {priority.label} {message}",
            message=message,
            output_fields=fields,
            tags=tuple(sorted(rule.tags)),
            hostname=self.hostname,
        )
