"""Show audit findings: a rich report grouped by object, or JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable, Sequence

from rich.console import Console
from rich.text import Text

from pipeline.audit.evaluate import Finding
from pipeline.audit.manifests import Manifest, Problem
from pipeline.audit.score import Summary

_SEVERITY_STYLE = {"danger": "bold red", "warning": "yellow"}


def findings_json(findings: Iterable[Finding], manifests: Sequence[Manifest] | None = None) -> str:
    rows = []
    for finding in findings:
        row = finding.as_dict()
        if manifests is not None and 0 <= finding.object_index < len(manifests):
            row["file"] = manifests[finding.object_index].path
            row["document"] = manifests[finding.object_index].index
        rows.append(row)
    return json.dumps(rows, indent=2)


def _object_title(finding: Finding, manifest: Manifest | None) -> Text:
    title = Text()
    title.append(finding.kind, style="bold")
    title.append(f" {finding.namespace + '/' if finding.namespace else ''}{finding.name}")
    if manifest is not None:
        title.append(f"  ({manifest.path}, document {manifest.index})", style="dim")
    return title


def _line(finding: Finding, indent: str, width: int) -> Text:
    line = Text(indent)
    if finding.success:
        line.append("✓ ", style="green")
    else:
        line.append("✗ ", style=_SEVERITY_STYLE.get(finding.severity, "red"))
    line.append(f"{finding.check:<{width}} ")
    if not finding.success:
        line.append(f"{finding.severity:<8} ", style=_SEVERITY_STYLE.get(finding.severity, "red"))
    else:
        line.append(" " * 9)
    line.append(finding.message, style="dim" if finding.success else "")
    return line


def print_pretty(
    console: Console,
    findings: Sequence[Finding],
    manifests: Sequence[Manifest],
    problems: Sequence[Problem],
    summary: Summary,
    only_failed: bool = False,
) -> None:
    grouped: dict[int, list[Finding]] = defaultdict(list)
    for finding in findings:
        if only_failed and finding.success:
            continue
        grouped[finding.object_index].append(finding)
    width = max((len(f.check) for rows in grouped.values() for f in rows), default=0)
    for index in sorted(grouped):
        rows = grouped[index]
        manifest = manifests[index] if 0 <= index < len(manifests) else None
        console.print(_object_title(rows[0], manifest))
        for finding in [r for r in rows if r.container is None]:
            console.print(_line(finding, "  ", width + 2))
        containers: dict[str, list[Finding]] = defaultdict(list)
        for finding in rows:
            if finding.container is not None:
                containers[finding.container].append(finding)
        for name, items in containers.items():
            console.print(Text(f"  container {name}", style="bold"))
            for finding in items:
                console.print(_line(finding, "    ", width))
        console.print()
    for problem in problems:
        console.print(Text(f"✗ {problem}", style="red"))
    score_style = "green" if summary.score >= 90 else "yellow" if summary.score >= 70 else "red"
    line = Text("Score: ")
    line.append(str(summary.score), style=f"bold {score_style}")
    line.append(f"  ({summary.successes} passed, {summary.warnings} warnings, {summary.dangers} dangers"
                f"{f', {len(problems)} unreadable documents' if problems else ''})")
    console.print(line)
