"""Alerts stored through the sink, with their context keywords, then the SOC report and the CLI on real OpenSearch."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest
from pipeline_harness import delete_alert_indices

from pipeline.alerts.alert import Alert
from pipeline.rules.model import Priority
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import AlertSink, template_for_prefix
from pipeline.sinks.report import alert_report
from pipeline.stack.provision import load_template
from pipeline.stack.settings import ALERTS_INDEX_PREFIX, DEFAULTS

HOUR_NS = 3600 * 10**9
T0 = 1_763_798_400 * 10**9  # 2025-11-22T08:00:00Z


def _alert(n: int, rule: str, priority: str, source: str, fields: dict, t: int) -> Alert:
    return Alert(uuid=f"report-{n}", time_ns=t, rule=rule, priority=Priority.parse(priority), source=source,
                 output="o", message="m", output_fields=fields, tags=(), hostname="node-1")


def _alerts() -> list[Alert]:
    shell = {"container.id": "c1", "k8s.ns.name": "web", "k8s.pod.name": "front", "user.name": "root", "proc.name": "bash"}
    java = {"container.id": "c2", "k8s.ns.name": "orders", "container.image.repository": "orders", "proc.name": "java"}
    pod = {"ka.target.namespace": "web", "ka.target.name": "debug", "ka.target.resource": "pods", "ka.user.name": "alice"}
    alerts = [_alert(i, "Shell", "notice", "syscall", shell, T0 + i * 10**9) for i in range(3)]
    alerts += [_alert(10 + i, "Java shell", "critical", "syscall", java, T0 + HOUR_NS + i) for i in range(2)]
    alerts.append(_alert(20, "Privileged pod", "warning", "k8s_audit", pod, T0 + 2 * HOUR_NS))
    alerts.append(_alert(30, "Too late", "error", "syscall", shell, T0 + 30 * HOUR_NS))  # outside the range
    return alerts


@pytest.mark.parametrize("family", [ALERTS_INDEX_PREFIX, "soc-"], ids=["default-prefix", "own-prefix"])
async def test_report_counts_what_the_sink_stored(opensearch, opensearch_url, family):
    """Stored as the worker stores them: under the default prefix's family, and under a prefix
    of its own (PEREGRINE_INDEX_PREFIX=soc-...), whose indices get the alert template too."""
    prefix = f"{family}test-report-{uuid.uuid4().hex[:8]}-"
    template_name, template = template_for_prefix(load_template(DEFAULTS.alerts_template_path), prefix)
    sink = AlertSink(opensearch_url, prefix, template=template, template_name=template_name)
    try:
        for alert in _alerts():
            sink.add(alert.uuid, alert.time_ns, alert_document(alert))
        assert await sink.flush() == []
        await opensearch.indices.refresh(index=f"{prefix}*")

        start_ms, end_ms = T0 // 10**6, (T0 + 24 * HOUR_NS) // 10**6
        report = await alert_report(opensearch, f"{prefix}*", start_ms, end_ms, top=5)
        assert report.total == 6
        assert report.by_priority == (("Critical", 2), ("Warning", 1), ("Notice", 3))
        assert dict(report.by_source) == {"syscall": 5, "k8s_audit": 1}
        top = dict(report.top)
        assert top["rules"] == (("Shell", 3), ("Java shell", 2), ("Privileged pod", 1))
        assert top["namespaces"] == (("web", 4), ("orders", 2))
        assert top["containers"] == (("c1", 3), ("c2", 2))
        assert top["images"] == (("orders", 2),)
        assert dict(top["users"]) == {"root": 3, "alice": 1}
        assert report.per_hour == (("2025-11-22T08:00Z", 3), ("2025-11-22T09:00Z", 2), ("2025-11-22T10:00Z", 1))

        env = dict(os.environ, PEREGRINE_OPENSEARCH_URL=opensearch_url, PEREGRINE_INDEX_PREFIX=prefix)
        cli = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "alerts", "report", "--since", "1d",
                              "--until-ms", str(end_ms), "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        printed = orjson.loads(cli.stdout)
        assert printed["total"] == 6 and printed["top"]["rules"] == {"Shell": 3, "Java shell": 2, "Privileged pod": 1}
        index = f"{prefix}2025.11.22"
        settings = (await opensearch.indices.get_settings(index=index))[index]["settings"]["index"]
        assert settings["number_of_replicas"] == "0"  # the template's, not the cluster default (1: yellow)
    finally:
        await sink.close()
        await delete_alert_indices(opensearch, prefix)

