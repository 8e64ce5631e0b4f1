"""`peregrine rules ...`: work with Falco rules files and conditions.

`parse` shows how a condition reads (syntax only: fields, macros and lists
are not checked). `validate` (rules loader) checks whole rules files.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(name="rules", help="Parse conditions and validate Falco rules files.", no_args_is_help=True)


@app.command("parse")
def parse(condition: str = typer.Argument(..., help="A condition, e.g. 'evt.type = open and proc.name in (cat, less)'")) -> None:
    """Print the condition's AST as JSON. Exit 1 on a syntax error, showing line:col and a caret."""
    from pipeline.errors import ConditionSyntaxError
    from pipeline.rules.parser import parse_condition
    from pipeline.rules.render import to_json_text

    try:
        node = parse_condition(condition)
    except ConditionSyntaxError as error:
        print(f"syntax error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(to_json_text(node))


@app.command("validate")
def validate(
    paths: list[str] = typer.Argument(..., help="Rules files, or directories of *.yaml files, loaded in this order"),
    warnings: bool = typer.Option(True, "--warnings/--no-warnings", help="Show load warnings (unused macros, no evt.type...)"),
    skip_unknown_sources: bool = typer.Option(
        True, "--skip-unknown-sources/--fail-on-unknown-sources",
        help="A rule of a source Peregrine does not read (a plugin's): skipped with a warning, as Falco does, or an error"
    ),
) -> None:
    """Load rules files as Falco would, stacked in order, and report every problem.

    Prints 'ok' and counts, or every error as file:line:col with the line and a
    caret (exit 1). Warnings are printed too but do not fail.
    """
    from pipeline.errors import RuleErrors
    from pipeline.rules.loader import RulesLoader

    files = _rules_files(paths)
    loader = RulesLoader(collect_errors=True, skip_unknown_sources=skip_unknown_sources)
    for path in files:
        loader.add_file(path)
    try:
        ruleset = loader.load()
    except RuleErrors as failed:
        if warnings:
            for warning in loader.last_findings.warnings:
                print(warning, file=sys.stderr)
        for error in sorted(failed.errors, key=lambda e: _position(e, files)):
            print(error, file=sys.stderr)
        count = len(failed.errors)
        print(f"{count} error{'s' if count != 1 else ''} in {len(files)} file{'s' if len(files) != 1 else ''}", file=sys.stderr)
        raise typer.Exit(1) from None
    ruleset, correlations = _correlations(files, ruleset)  # `- correlation:` items (pipeline/correlation)
    if warnings:
        for warning in ruleset.warnings:
            print(warning, file=sys.stderr)
    print(
        f"ok: {len(ruleset.rules)} rules, {len(ruleset.macros)} macros, {len(ruleset.lists)} lists"
        + (f", {len(correlations)} correlations" if correlations else "")
        + f" in {len(files)} file{'s' if len(files) != 1 else ''} ({len(ruleset.warnings)} warnings)"
    )


def _position(error, files: list[str]) -> tuple[int, int, int]:
    """Sort key: errors in load order of their files, then by line and column."""
    location = getattr(error, "location", None)
    if location is None:
        return (len(files), 0, 0)
    index = files.index(location.path) if location.path in files else len(files)
    return (index, location.line, location.col)


def _correlations(files: list[str], ruleset):
    """The files' correlations checked against the loaded rules; every error printed, exit 1."""
    from pipeline.correlation.parse import CorrelationLoader, without_unused_warnings
    from pipeline.errors import RuleErrors

    loader = CorrelationLoader(collect_errors=True)
    for path in files:
        loader.add_file(path)
    if not loader.items and not loader.findings.errors:
        return ruleset, ()
    try:
        correlations = loader.load(ruleset)
    except RuleErrors as failed:
        for error in failed.errors:
            print(error, file=sys.stderr)
        count = len(failed.errors)
        print(f"{count} error{'s' if count != 1 else ''} in correlations", file=sys.stderr)
        raise typer.Exit(1) from None
    return without_unused_warnings(ruleset, loader), correlations


def _rules_files(paths: list[str]) -> list[str]:
    """Files as given; a directory stands for its *.yaml and *.yml files, sorted by name.

    An empty directory adds nothing, as in Falco (whose rules.d is empty until a rule author
    adds to it); only when no path gives any file is there nothing to load, an error.
    """
    from pathlib import Path

    from pipeline.errors import RuleLoadError

    files: list[str] = []
    empty: list[str] = []
    for path in paths:
        if Path(path).is_dir():
            found = sorted(p for p in Path(path).iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                empty.append(path)
            files.extend(str(p) for p in found)
        else:
            files.append(path)
    if not files and empty:
        raise RuleLoadError(f"no *.yaml rules files in directory {', '.join(empty)}")
    return files


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rules")
