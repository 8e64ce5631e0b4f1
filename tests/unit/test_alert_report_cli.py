"""`peregrine alerts report` refuses bad options in one line, before reaching OpenSearch."""

from __future__ import annotations

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
