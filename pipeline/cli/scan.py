"""`peregrine scan`: run rules over event files, print Falco alerts.

Exit codes: 0 every input line was read and evaluated; 1 some lines or events
were bad (malformed JSON, not an object, unknown source, evaluation failure:
each is reported on stderr as file:line and the scan went on); 2 the scan
could not run (rules errors, shown as file:line:col; an unreadable input; a
bad option); 141 the reader of stdout went away (``| head``), as for SIGPIPE.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

RULES_ENV = "PEREGRINE_RULES"
CORRELATIONS_FILE = "peregrine_correlations.yaml"  # loaded after the rules files, which its steps may use


def default_rules_paths() -> list[str]:
    """``PEREGRINE_RULES`` (paths separated by os.pathsep), else the repo's ``rules/*_rules.yaml``
    and its correlations (``rules/peregrine_correlations.yaml``): what a worker loads, so that
    ``scan`` gives a file's events the alerts the pipeline would."""
    configured = os.environ.get(RULES_ENV)
    if configured:
        return [p for p in configured.split(os.pathsep) if p]
    import pipeline

    rules_dir = Path(pipeline.__file__).resolve().parent.parent / "rules"
    found = sorted(str(p) for p in rules_dir.glob("*_rules.yaml"))
    if not found:
        from pipeline.errors import ConfigError

        raise ConfigError(f"no *_rules.yaml in {rules_dir}; pass --rules or set {RULES_ENV}")
    correlations = rules_dir / CORRELATIONS_FILE
    if correlations.is_file():
        found.append(str(correlations))
    return found


def scan(
    inputs: list[str] = typer.Argument(..., help="Event files (JSON lines, a JSON array, K8s EventLists) or - for stdin"),
    rules: list[str] = typer.Option(None, "--rules", "-r", help="Rules file or directory, repeatable, loaded in order (default: Peregrine's rules)"),
    source: str = typer.Option("auto", "--source", help="auto|syscall|k8s_audit|aws_cloudtrail"),
    matching: str = typer.Option("first", "--matching", help="first (Falco's default) or all"),
    min_priority: str = typer.Option(None, "--min-priority", help="Skip rules less severe than this priority"),
    json_output: bool = typer.Option(False, "--json", help="Falco's JSON alerts, one per line"),
    hostname: str = typer.Option(None, "--hostname", help="hostname in alerts (default: FALCO_HOSTNAME or this host)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr"),
    no_config_audit: bool = typer.Option(False, "--no-config-audit", help="Do not run the Polaris checks on objects in K8s audit events"),
    audit_config: Path = typer.Option(None, "--audit-config", help="Polaris config.yaml for the live audit (default: the 44 checks at their default severities)"),
) -> None:
    """Evaluate events against rules and print one alert per line.

    Exit 0: clean; 1: some input lines were bad (reported, skipped); 2: could not scan;
    141: stdout was closed by its reader.
    """
    from pipeline.alerts import falco_json
    from pipeline.cli.rules import _rules_files
    from pipeline.errors import ConfigError, RuleErrors
    from pipeline.rules.loader import RulesLoader
    from pipeline.rules.model import Priority
    from pipeline.scan import AUTO, SOURCES, Scanner, scan_inputs

    if source != AUTO and source not in SOURCES:
        raise ConfigError(f"--source must be auto or one of {', '.join(SOURCES)}, got '{source}'")
    if matching not in ("first", "all"):
        raise ConfigError(f"--matching must be first or all, got '{matching}'")
    threshold = None
    if min_priority is not None:
        try:
            threshold = Priority.parse(min_priority)
        except ValueError as error:
            raise ConfigError(f"--min-priority: {error}") from None
    for path in inputs:
        if path != "-" and not Path(path).is_file():
            print(f"error: cannot read input {path}: no such file", file=sys.stderr)
            raise typer.Exit(2)
    files = _rules_files(rules) if rules else default_rules_paths()
    loader = RulesLoader(collect_errors=True)
    for path in files:
        loader.add_file(path)
    try:
        ruleset = loader.load()
    except RuleErrors as failed:
        for error in failed.errors:
            print(error, file=sys.stderr)
        print(f"{len(failed.errors)} rules error(s); nothing scanned", file=sys.stderr)
        raise typer.Exit(2) from None
    if not quiet:
        for warning in ruleset.warnings:
            if warning.shown:  # a plugin's rule in a shared rules directory: skipped, as Falco does
                print(warning, file=sys.stderr)
    correlations = _correlations(files, ruleset)
    live_audit = None
    if not no_config_audit and source in (AUTO, "k8s_audit"):
        from pipeline.audit.live import LiveAudit

        live_audit = LiveAudit.from_config_file(str(audit_config) if audit_config else None)  # AuditError: exit 2
    scanner = Scanner(ruleset, rule_matching=matching, min_priority=threshold, source=source, hostname=hostname,
                      correlations=correlations, live_audit=live_audit)
    out = sys.stdout
    if json_output:
        def on_alert(alert) -> None:
            out.write(falco_json(alert).decode() + "\n")
    else:
        def on_alert(alert) -> None:
            out.write(alert.output + "\n")

    def on_problem(where, message: str) -> None:
        print(f"warning: {where}: {message}", file=sys.stderr)

    try:
        stats = scan_inputs(scanner, inputs, on_alert, on_problem)
    except BrokenPipeError:  # our reader stopped (`| head`): stop quietly, as shell tools do on SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    except OSError as error:
        print(f"error: cannot read input: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    out.flush()
    if not quiet:
        rate = f", {stats.events / stats.seconds:,.0f} events/s" if stats.seconds > 0 else ""
        print(
            f"scanned {stats.events} events from {stats.inputs} input(s) in {stats.seconds:.3f}s{rate}: "
            f"{stats.alerts} alerts, {stats.bad_lines} bad lines",
            file=sys.stderr,
        )
        for rule, count in sorted(stats.by_rule.items()):
            print(f"  {count:6d}  {rule}", file=sys.stderr)
        if live_audit is not None and live_audit.counts:
            counts = live_audit.counts
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if k not in ("audited", "unchanged"))
            unchanged = f" ({counts['unchanged']} unchanged since their failures were reported)" if counts["unchanged"] else ""
            print(f"live audit: {counts['audited'] + counts['unchanged']} objects audited{unchanged}"
                  + (f"; skipped: {outcomes}" if outcomes else ""), file=sys.stderr)
    if stats.bad_lines:
        raise typer.Exit(1)


def _correlations(files: list[str], ruleset) -> tuple:
    """The files' `- correlation:` items (pipeline/correlation); errors as file:line:col, exit 2."""
    from pipeline.correlation.parse import CorrelationLoader
    from pipeline.errors import RuleErrors

    loader = CorrelationLoader(collect_errors=True)
    for path in files:
        loader.add_file(path)
    if not loader.items and not loader.findings.errors:
        return ()
    try:
        return loader.load(ruleset)
    except RuleErrors as failed:
        for error in failed.errors:
            print(error, file=sys.stderr)
        print(f"{len(failed.errors)} correlation error(s); nothing scanned", file=sys.stderr)
        raise typer.Exit(2) from None


def register(root: typer.Typer) -> None:
    root.command("scan")(scan)
