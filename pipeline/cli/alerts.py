"""`peregrine alerts`: what is in OpenSearch. `retention --days N` deletes daily
alert indices older than N days; `search` prints the latest alerts."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import typer

from pipeline.errors import ConfigError, StackError

app = typer.Typer(help="Alerts stored in OpenSearch: search them, apply retention.", no_args_is_help=True)


def expired_indices(names: list[str], prefix: str, days: int, today: datetime) -> list[str]:
    """Daily indices ``<prefix>YYYY.MM.DD`` whose day is more than ``days`` before ``today``."""
    cutoff = (today - timedelta(days=days)).date()
    pattern = re.compile(re.escape(prefix) + r"(\d{4})\.(\d{2})\.(\d{2})$")
    old = []
    for name in names:
        match = pattern.match(name)
        if match and datetime(*map(int, match.groups())).date() < cutoff:
            old.append(name)
    return sorted(old)


async def _client_call(url: str, fn):
    from opensearchpy import AsyncOpenSearch

    client = AsyncOpenSearch(hosts=[url], timeout=30)
    try:
        return await fn(client)
    except Exception as error:  # noqa: BLE001
        raise StackError(f"OpenSearch at {url}: {type(error).__name__}: {error}") from None
    finally:
        await client.close()


@app.command("retention")
def retention(
    days: int = typer.Option(..., "--days", help="Keep this many days of alert indices"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted"),
) -> None:
    """Delete daily alert indices older than N days."""
    from pipeline.stream.settings import PipelineSettings

    if days < 0:
        raise ConfigError("--days must be 0 or more")
    settings = PipelineSettings.from_env()

    async def run(client):
        found = await client.indices.get(index=f"{settings.index_prefix}*", ignore_unavailable=True, allow_no_indices=True)
        old = expired_indices(list(found), settings.index_prefix, days, datetime.now(timezone.utc))
        if old and not dry_run:
            await client.indices.delete(index=",".join(old))
        return old

    old = asyncio.run(_client_call(settings.opensearch_url, run))
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {len(old)} index(es) older than {days} day(s)" + ("".join(f"\n  {n}" for n in old)))


@app.command("search")
def search(
    query: str = typer.Argument("*", help="OpenSearch query string, e.g. 'rule:\"Java*\" AND priority:Critical'"),
    size: int = typer.Option(20, "--size", help="How many alerts"),
) -> None:
    """Print the latest alerts matching a query string."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.stream.settings import PipelineSettings

    settings = PipelineSettings.from_env()

    async def run(client):
        result = await client.search(index=f"{settings.index_prefix}*", ignore_unavailable=True, body={
            "size": size, "sort": [{"time": "desc"}], "query": {"query_string": {"query": query}}})
        return [h["_source"] for h in result["hits"]["hits"]]

    alerts = asyncio.run(_client_call(settings.opensearch_url, run))
    table = Table(title=f"{len(alerts)} alert(s)")
    for column in ("time", "priority", "rule", "output"):
        table.add_column(column, overflow="fold")
    for alert in alerts:
        table.add_row(alert.get("time", "")[:23], alert.get("priority", ""), alert.get("rule", ""), alert.get("output", "")[:200])
    Console(highlight=False).print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerts")
