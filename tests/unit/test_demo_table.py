"""`peregrine demo`'s table of alerts keeps every column readable, whatever the console's width:
with the long Polaris rule names unwrapped, a 160-column console had shown no priority and no
output at all."""

from __future__ import annotations

import pytest
from rich.console import Console

from pipeline.cli.demo import alerts_table

FOUND = [
    {"time": "2025-11-22T08:00:01.123456789Z", "priority": "Critical", "rule": "Log4Shell exploitation chain",
     "output_fields": {"container.id": "7d3f9a1b2c4e"},
     "output": "08:00:01.123456789: Critical Log4Shell exploitation chain in container 7d3f9a1b2c4e (user=root)"},
    {"time": "2025-11-22T08:00:02Z", "priority": "Warning",
     "rule": "Polaris linuxHardening: Use one of AppArmor, Seccomp, SELinux, or dropping Linux Capabilities to restrict "
             "containers using unwanted privileges",
     "output_fields": {"ka.target.namespace": "web"}, "output": "08:00:02: Warning Polaris check failed for deployment web/shop"},
]


@pytest.mark.parametrize("width", [80, 120, 160, 220])
def test_every_column_shows_at_any_width(width):
    console = Console(width=width, record=True)
    console.print(alerts_table(FOUND, "peregrine-alerts-"))
    text = console.export_text()
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    for header in ("time (UTC)", "priority", "rule", "where", "output"):
        assert header in text
    assert "Critical" in text and "Warning" in text
    assert "11-22 08:00:01" in text and "7d3f9a1b2c4e" in text
    columns: dict[int, str] = {}
    for line in lines:
        if line.startswith("│"):
            for n, cell in enumerate(line.split("│")[1:-1]):
                columns[n] = columns.get(n, "") + cell.replace(" ", "")
    assert "unwantedprivileges" in columns[2] and "deploymentweb/shop" in columns[4]  # folded, not cut
