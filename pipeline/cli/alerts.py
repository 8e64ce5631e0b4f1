"""`peregrine alerts`: what is in OpenSearch. `retention --days N` deletes daily
alert indices older than N days; `search` prints the latest alerts; `report`
summarises a time range for a SOC (per priority, source, hour; top rules,
namespaces, containers, images, users)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import typer

from pipeline.errors import ConfigError
from pipeline.sinks.daily_indices import daily_indices, index_day, only_indices

app = typer.Typer(help="Alerts stored in OpenSearch: search them, report on them, apply retention.", no_args_is_help=True)


def expired_indices(names: list[str], prefix: str, days: int, today: datetime) -> list[str]:
    """Daily indices ``<prefix>YYYY.MM.DD`` whose day is more than ``days`` before ``today``
    (a name whose digits are no date, such as ``2024.13.45``, is not a daily index)."""
    try:
        cutoff = (today - timedelta(days=days)).date()
    except OverflowError:  # more days than the calendar has before today: nothing is that old
        return []
    return sorted(name for name in names if (day := index_day(name, prefix)) is not None and day < cutoff)


MAX_NAMES_CHARS = 3000  # a DELETE's index list: OpenSearch refuses a request line over 4096 bytes


def name_batches(names: list[str], max_chars: int = MAX_NAMES_CHARS) -> list[list[str]]:
    """``names`` in runs whose comma-joined length stays within ``max_chars`` (a name longer
    than that goes alone): a year of daily indices does not fit one request line."""
    batches: list[list[str]] = []
    size = 0
    for name in names:
        if batches and size + 1 + len(name) <= max_chars:
            batches[-1].append(name)
            size += 1 + len(name)
        else:
            batches.append([name])
            size = len(name)
    return batches


async def _client_call(url: str, fn, settings=None):
    """``settings``: PipelineSettings whose OpenSearch user/password/CA the client uses."""
    from opensearchpy import AsyncOpenSearch

    from pipeline.stream.credentials import opensearch_options

    from pipeline.sinks.request_errors import request_failure

    client = AsyncOpenSearch(hosts=[url], timeout=30, **(opensearch_options(settings) if settings is not None else {}))
    try:
        return await fn(client)
    except Exception as error:  # noqa: BLE001
        raise request_failure(url, error) from None
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
        # closed indices too: an old index someone closed still holds its disk until deleted
        found = await daily_indices(client, settings.index_prefix, closed=True)
        old = expired_indices(found, settings.index_prefix, days, datetime.now(timezone.utc))
        if dry_run:
            return old
        deleted = 0
        for batch in name_batches(old):
            try:
                await client.indices.delete(index=",".join(batch))
            except Exception as error:  # noqa: BLE001 - say how far it got
                raise RuntimeError(f"{error} (after deleting {deleted} of the {len(old)} old indices)") from None
            deleted += len(batch)
        return old

    old = asyncio.run(_client_call(settings.opensearch_url, run, settings))
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
        names = await daily_indices(client, settings.index_prefix)
        if not names:
            return []
        # no partial results: a query some shards cannot run (one that does not parse) is an error,
        # not an empty table from the shards the _index filter skipped
        result = await client.search(index=f"{settings.index_prefix}*", ignore_unavailable=True,
                                     allow_partial_search_results=False, body={
            "size": size, "sort": [{"time": "desc"}],
            "query": {"bool": {"must": [{"query_string": {"query": query}}], "filter": [only_indices(names)]}}})
        return [h["_source"] for h in result["hits"]["hits"]]

    alerts = asyncio.run(_client_call(settings.opensearch_url, run, settings))
    table = Table(title=f"{len(alerts)} alert(s)")
    for column in ("time", "priority", "rule", "output"):
        table.add_column(column, overflow="fold")
    for alert in alerts:
        table.add_row(alert.get("time", "")[:23], alert.get("priority", ""), alert.get("rule", ""), alert.get("output", "")[:200])
    Console(highlight=False).print(table)


@app.command("report")
def report(
    since: str = typer.Option("24h", "--since", help="How far back from --until-ms: 30m, 24h, 7d"),
    until_ms: int = typer.Option(0, "--until-ms", help="End of the range, epoch milliseconds (default: now)"),
    top: int = typer.Option(10, "--top", min=1, help="Rows in each top-N section"),
    output: str = typer.Option("pretty", "--format", help="pretty or json"),
) -> None:
    """Summarise the alerts of a time range: per priority, source and hour; top rules, namespaces, containers, images, users."""
    import time

    import orjson

    from pipeline.correlation.parse import parse_duration
    from pipeline.stream.settings import PipelineSettings

    span_ns = parse_duration(since)
    if span_ns is None or span_ns <= 0:
        raise ConfigError(f"--since {since!r}: give a duration such as 30m, 24h or 7d")
    if output not in ("pretty", "json"):
        raise ConfigError(f"--format {output!r}: use pretty or json")
    settings = PipelineSettings.from_env()
    end_ms = until_ms or time.time_ns() // 1_000_000
    start_ms = end_ms - span_ns // 1_000_000
    result = asyncio.run(_client_call(settings.opensearch_url,
                                      lambda client: _prefix_report(client, settings.index_prefix, start_ms, end_ms, top), settings))
    if output == "json":
        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    _print_report(result)


async def _prefix_report(client, prefix: str, start_ms: int, end_ms: int, top: int):
    from pipeline.sinks.report import alert_report

    names = await daily_indices(client, prefix)
    return await alert_report(client, f"{prefix}*", start_ms, end_ms, top, indices=names)


def _print_report(result) -> None:
    from rich.console import Console
    from rich.table import Table

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")

    console = Console(highlight=False)
    console.print(f"{result.total} alert(s) from {when(result.start_ms)} to {when(result.end_ms)}")
    sections = [("priority", result.by_priority), ("source", result.by_source)]
    sections += [(f"top {name}", rows) for name, rows in result.top]
    sections.append(("per hour", result.per_hour))
    for title, rows in sections:
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("value", overflow="fold")
        table.add_column("alerts", justify="right")
        for value, count in rows:
            table.add_row(value, str(count))
        console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerts")
