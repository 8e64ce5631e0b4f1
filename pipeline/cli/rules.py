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


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rules")
