"""`peregrine alerts search|report|retention` on real OpenSearch: only the configured prefix's
daily indices (not a nested prefix's, not a stray name), closed old indices expire too, and a
query that does not parse is one clear line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import orjson
from pipeline_harness import delete_alert_indices

from pipeline.alerts.alert import Alert
from pipeline.rules.model import Priority
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import AlertSink, template_for_prefix
from pipeline.stack.provision import load_template
from pipeline.stack.settings import ALERTS_INDEX_PREFIX, DEFAULTS


def _cli(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PEREGRINE_OPENSEARCH_URL=url, PEREGRINE_INDEX_PREFIX=prefix, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", "alerts", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def _alert(n: int, rule: str, time_ns: int) -> Alert:
    return Alert(uuid=f"cli-{n}-{uuid.uuid4().hex[:6]}", time_ns=time_ns, rule=rule, priority=Priority.parse("critical"),
                 source="syscall", output="o", message="m", output_fields={"k8s.ns.name": "web"}, tags=(), hostname="h")


async def _store(url: str, prefix: str, alerts: list[Alert]) -> None:
    name, template = template_for_prefix(load_template(DEFAULTS.alerts_template_path), prefix)
    sink = AlertSink(url, prefix, template=template, template_name=name)
    try:
        for alert in alerts:
            sink.add(alert.uuid, alert.time_ns, alert_document(alert))
        assert await sink.flush() == []
    finally:
        await sink.close()


async def test_search_and_report_read_the_prefixs_daily_indices_only(opensearch, opensearch_url):
    """A worker with the default family's prefix and one with a prefix nested in it
    (``<prefix>eu-``) share a cluster: each one's report and search count its own alerts."""
    prefix = f"{ALERTS_INDEX_PREFIX}test-cli-{uuid.uuid4().hex[:8]}-"
    nested = f"{prefix}eu-"
    now = time.time_ns()
    try:
        await _store(opensearch_url, prefix, [_alert(i, "Ours", now - i * 10**9) for i in range(3)])
        await _store(opensearch_url, nested, [_alert(10 + i, "Nested", now - i * 10**9) for i in range(5)])
        stray = f"{prefix}{datetime.now(timezone.utc):%Y.%m.%d}-restored"  # a reindexed copy: no daily index
        await opensearch.index(index=stray, id="stray", body=orjson.loads(alert_document(_alert(99, "Stray", now))))
        await opensearch.indices.refresh(index=f"{prefix}*")

        report = _cli(opensearch_url, prefix, "report", "--since", "1h", "--format", "json")
        assert report.returncode == 0, report.stderr
        assert orjson.loads(report.stdout)["top"]["rules"] == {"Ours": 3}
        nested_report = _cli(opensearch_url, nested, "report", "--since", "1h", "--format", "json")
        assert orjson.loads(nested_report.stdout)["top"]["rules"] == {"Nested": 5}

        search = _cli(opensearch_url, prefix, "search", "priority:Critical")
        assert search.returncode == 0, search.stderr
        assert "3 alert(s)" in search.stdout and "Nested" not in search.stdout and "Stray" not in search.stdout
    finally:
        await delete_alert_indices(opensearch, nested)
        await delete_alert_indices(opensearch, prefix)


async def test_retention_deletes_old_daily_indices_closed_or_open_and_nothing_else(opensearch, opensearch_url):
    prefix = f"{ALERTS_INDEX_PREFIX}test-ret-{uuid.uuid4().hex[:8]}-"
    today = datetime.now(timezone.utc)
    day = lambda n: f"{today - timedelta(days=n):%Y.%m.%d}"  # noqa: E731
    old_open, old_closed = f"{prefix}{day(10)}", f"{prefix}{day(4)}"
    kept = [f"{prefix}{day(0)}", f"{prefix}{day(3)}", f"{prefix}2020.13.45", f"{prefix}eu-{day(10)}",
            f"{prefix}{day(10)}-restored"]
    try:
        for name in (old_open, old_closed, *kept):
            await opensearch.indices.create(index=name)
        await opensearch.indices.close(index=old_closed)

        dry = _cli(opensearch_url, prefix, "retention", "--days", "3", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.split("\n", 1)[0] == "would delete 2 index(es) older than 3 day(s)"
        assert sorted(re.findall(r"^  (\S+)$", dry.stdout, re.M)) == sorted([old_open, old_closed])

        run = _cli(opensearch_url, prefix, "retention", "--days", "3")
        assert run.returncode == 0, run.stderr
        assert run.stdout.split("\n", 1)[0] == "deleted 2 index(es) older than 3 day(s)"
        left = await opensearch.indices.get_alias(index=f"{prefix}*", expand_wildcards="open,closed")
        assert sorted(left) == sorted(kept)
    finally:
        await opensearch.indices.delete(index=f"{prefix}*", expand_wildcards="open,closed", ignore_unavailable=True)


async def test_a_query_that_does_not_parse_is_one_line_saying_where(opensearch, opensearch_url):
    prefix = f"{ALERTS_INDEX_PREFIX}test-q-{uuid.uuid4().hex[:8]}-"
    try:
        # several daily indices and another family's under <prefix>*: every shard is asked, none skipped silently
        await _store(opensearch_url, prefix, [_alert(n, "Ours", time.time_ns() - n * 86_400 * 10**9) for n in range(3)])
        await _store(opensearch_url, f"{prefix}eu-", [_alert(9, "Nested", time.time_ns())])
        for query, where in (("AND priority", "line 1, column 0"), ('rule:"unterminated', "line 1, column 19")):
            cli = _cli(opensearch_url, prefix, "search", query)
            assert cli.returncode == 2
            assert "Traceback" not in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
            assert "the query does not parse" in cli.stderr and where in cli.stderr, cli.stderr
    finally:
        await delete_alert_indices(opensearch, f"{prefix}eu-")
        await delete_alert_indices(opensearch, prefix)
