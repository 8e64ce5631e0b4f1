"""`peregrine`: the command's root. Each command group lives in its own module
and registers here; expected failures (a PeregrineError) print one clear
message and exit non-zero, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from pipeline.errors import PeregrineError

app = typer.Typer(
    name="peregrine",
    help="Runtime threat detection for Kubernetes: Falco-compatible rules on Kafka, alerts to Kafka and OpenSearch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Peregrine's command line."""


def _register() -> None:
    # One line per command group; each module defines `app` (a Typer) or `register(app)`.
    from pipeline.cli import rules; rules.register(app)  # noqa: E702
    from pipeline.cli import stack; stack.register(app)  # noqa: E702
    from pipeline.cli import audit; audit.register(app)  # noqa: E702
    from pipeline.cli import scan; scan.register(app)  # noqa: E702
    from pipeline.cli import worker; worker.register(app)  # noqa: E702
    from pipeline.cli import replay; replay.register(app)  # noqa: E702
    from pipeline.cli import demo; demo.register(app)  # noqa: E702
    from pipeline.cli import alerts; alerts.register(app)  # noqa: E702
    from pipeline.cli import webhook; webhook.register(app)  # noqa: E702


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, standalone_mode=False)
    except PeregrineError as error:
        err_console.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        return 2
    except typer.Exit as stop:
        return stop.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as error:  # usage errors and aborts
        # click's, or (typer >= 0.29) those of the click typer vendors: other classes, same names
        kinds = {cls.__name__ for cls in type(error).__mro__}
        if "ClickException" in kinds:
            error.show()  # type: ignore[attr-defined]
            return error.exit_code  # type: ignore[attr-defined]
        if "Abort" in kinds:
            return 1
        raise
    # click returns a typer.Exit's code in non-standalone mode
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
