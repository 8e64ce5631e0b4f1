"""`peregrine stack up|down|status|provision`: the local Kafka + OpenSearch stack.

`up` downloads once (Maven, cached in ~/.m2), starts both servers on
127.0.0.1, waits until they answer, creates the topics and the alert index
template. `down` stops only what `up` started. Settings: PEREGRINE_* variables
(see pipeline/stack/settings.py); files under $PEREGRINE_HOME (default
<repo>/.peregrine).
"""

from __future__ import annotations

import asyncio

import typer

app = typer.Typer(name="stack", help="Run the local Kafka + OpenSearch stack (no Docker needed).", no_args_is_help=True)


def _say(message: str) -> None:
    print(message, flush=True)


@app.command("up")
def up() -> None:
    """Install (once), start, wait until ready, create topics and the alert template."""
    from pipeline.stack.lifecycle import up as stack_up
    from pipeline.stack.settings import StackSettings

    settings = StackSettings.from_env()
    result = asyncio.run(stack_up(settings, _say))
    for note in result.notes:
        _say(note)
    for server in result.servers:
        _say(f"{server.name}: {server.health} on port {server.port}, log {server.log}")
    started = ", ".join(result.started) if result.started else "nothing (already running)"
    _say(f"stack up in {result.seconds:.1f}s; started {started}. Kafka {settings.kafka_bootstrap}, OpenSearch {settings.opensearch_url}")


@app.command("down")
def down() -> None:
    """Stop the servers `stack up` started (SIGTERM, then SIGKILL after a timeout)."""
    from pipeline.stack.lifecycle import down as stack_down
    from pipeline.stack.settings import StackSettings

    stack_down(StackSettings.from_env(), _say)


@app.command("status")
def status() -> None:
    """Versions, ports, pids and health. Exit 1 when a server is not ready."""
    from pipeline.stack.lifecycle import status as stack_status
    from pipeline.stack.settings import StackSettings

    settings = StackSettings.from_env()
    servers = asyncio.run(stack_status(settings))
    for s in servers:
        pid = f"pid {s.pid}" + ("" if s.ours or s.pid is None else " (not started by peregrine)") if s.pid else "no pid"
        _say(f"{s.name:<11} {s.version:<10} port {s.port:<6} {pid:<12} {s.health}")
    _say(f"home {settings.home}")
    if not all(s.ready for s in servers):
        raise typer.Exit(1)


@app.command("provision")
def provision() -> None:
    """Create the topics and the alert template on an already running Kafka and OpenSearch
    (PEREGRINE_KAFKA_BOOTSTRAP, PEREGRINE_OPENSEARCH_URL), e.g. a docker compose stack."""
    from pipeline.stack.provision import ensure_topics, install_index_template
    from pipeline.stack.settings import StackSettings

    settings = StackSettings.from_env()
    for note in asyncio.run(ensure_topics(settings.kafka_bootstrap, settings.topics)):
        _say(note)
    _say(f"topics ready on {settings.kafka_bootstrap}: {', '.join(t.name for t in settings.topics)}")
    install_index_template(settings.opensearch_url, settings.alerts_template_path)
    _say(f"alert index template installed on {settings.opensearch_url}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="stack")
