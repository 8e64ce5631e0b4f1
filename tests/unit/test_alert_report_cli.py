"""`peregrine alerts report` refuses bad options in one line, before reaching OpenSearch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args, message", [
    (["--since", "soon"], "--since 'soon'"),
    (["--format", "xml"], "--format 'xml'"),
])
def test_report_refuses_bad_options_in_one_line(args, message):
    cli = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "alerts", "report", *args],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2
    assert message in cli.stderr and "Traceback" not in cli.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("args", [["search", "*"], ["report"], ["retention", "--days", "3"]])
def test_opensearch_down_is_one_line_naming_it_and_exit_2(args):
    url = f"http://127.0.0.1:{_closed_port()}"
    env = dict(os.environ, PEREGRINE_OPENSEARCH_URL=url)
    cli = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "alerts", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2
    assert "Traceback" not in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert cli.stderr.startswith(f"error: cannot reach OpenSearch at {url}: ") and "Connect call failed" in cli.stderr
    assert "caused by" not in cli.stderr  # the cause once, not opensearch-py's repr of it twice
