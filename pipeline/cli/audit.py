"""`peregrine audit PATH...`: Polaris-compatible configuration audit of Kubernetes manifests.

Exit codes: 0 clean; 1 a ``danger`` check failed or the score is below
``--min-score``; 3 otherwise, when a document could not be read (not YAML, not
a Kubernetes object, a kind no Kubernetes API group serves); 2 for a bad config
or check (one line).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer


class Format(str, Enum):
    pretty = "pretty"
    json = "json"


EXIT_FAILED = 1
EXIT_UNREADABLE = 3


def audit(
    paths: list[str] = typer.Argument(..., help="Manifest files, directories of *.yaml/*.yml (recursive), or - for standard input"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A Polaris config.yaml (checks, exemptions, customChecks)"),
    output_format: Format = typer.Option(Format.pretty, "--format", "-f", help="pretty (grouped by object) or json (a list of findings)"),
    only_failed: bool = typer.Option(False, "--only-failed", help="Show failed checks only (the score still counts every check)"),
    min_score: int = typer.Option(0, "--min-score", min=0, max=100, help="Exit 1 when the score is below this"),
    fix: bool = typer.Option(False, "--fix", help="Write the manifests with each failed check's mutation applied (stdout unless --fix-output/--in-place)"),
    fix_output: Optional[Path] = typer.Option(None, "--fix-output", help="With --fix: write fixed files into this directory, same file names"),
    in_place: bool = typer.Option(False, "--in-place", help="With --fix: rewrite the input files"),
    disallow_exemptions: bool = typer.Option(False, "--disallow-exemptions", help="Apply no exemption (config or annotation)"),
    disallow_config_exemptions: bool = typer.Option(False, "--disallow-config-exemptions", help="Do not apply the config's exemptions"),
    disallow_annotation_exemptions: bool = typer.Option(False, "--disallow-annotation-exemptions", help="Do not apply polaris.fairwinds.com/*exempt annotations"),
) -> None:
    """Audit workloads, RBAC, PDBs, HPAs, NetworkPolicies, Ingresses and ConfigMaps with Polaris's checks and score."""
    from rich.console import Console

    from pipeline.audit.config import default_config, load_config
    from pipeline.audit.evaluate import audit_objects
    from pipeline.audit.manifests import read_paths
    from pipeline.audit.report import findings_json, print_pretty
    from pipeline.audit.score import summarize

    settings = (load_config(config) if config else default_config()).disallowing(
        config_exemptions=disallow_exemptions or disallow_config_exemptions,
        annotation_exemptions=disallow_exemptions or disallow_annotation_exemptions,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for unknown in settings.unknown_checks:
        err.print(f"warning: {settings.source}: unknown check {unknown!r} is not run")
    manifests, problems = read_paths(paths)
    objects = [m.obj for m in manifests]
    findings = audit_objects(objects, settings)
    summary = summarize(findings)

    if fix:
        _write_fixes(manifests, objects, findings, settings, fix_output, in_place, err)
        if fix_output is None and not in_place:
            for problem in problems:
                err.print(f"✗ {problem}")
            err.print(f"Score before fixes: {summary.score}")
            raise typer.Exit(_exit_code(findings, summary.score, min_score, problems))

    if output_format is Format.json:
        shown = [f for f in findings if not (only_failed and f.success)]
        print(findings_json(shown, manifests))
        for problem in problems:
            print(f"✗ {problem}", file=sys.stderr)
    else:
        console = Console(highlight=False, soft_wrap=True)
        print_pretty(console, findings, manifests, problems, summary, only_failed)
    raise typer.Exit(_exit_code(findings, summary.score, min_score, problems))


def _exit_code(findings, score: int, min_score: int, problems) -> int:
    if any(not f.success and f.severity == "danger" for f in findings) or score < min_score:
        return EXIT_FAILED
    return EXIT_UNREADABLE if problems else 0


def _write_fixes(manifests, objects, findings, settings, fix_output, in_place, err) -> None:
    from pipeline.audit.fix import fix_objects, render_files
    from pipeline.audit.manifests import STDIN
    from pipeline.errors import AuditError

    if fix_output is not None and in_place:
        raise AuditError("--fix-output and --in-place exclude each other")
    if any(m.path == STDIN for m in manifests):
        raise AuditError("--fix rewrites files: save standard input to a file and fix that")
    fixed, applied = fix_objects(objects, findings, settings.checks)
    files = render_files(manifests, fixed)
    if fix_output is None and not in_place:
        for file in files:
            print(f"# Source: {file.path}\n---\n{file.text}", end="")
    else:
        names = [Path(f.path).name for f in files]
        if fix_output is not None and len(set(names)) != len(names):
            raise AuditError("--fix-output: two input files have the same name; fix them separately or use --in-place")
        for file in files:
            target = Path(file.path) if in_place else Path(fix_output) / Path(file.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.text, encoding="utf-8")
    err.print(f"fixed {len(applied)} failed check(s) in {len(files)} file(s)")


def register(root: typer.Typer) -> None:
    root.command("audit")(audit)
