"""`peregrine replay FILE...`: produce events from files to Kafka, with a progress bar.

Files are read like `peregrine scan` reads them (JSON lines, arrays, K8s
EventLists, CloudTrail Records). Each event goes to its source's topic
unless --topic is given; syscall events are keyed by ``container.id`` (host
events by ``host:`` + their ``evt.hostname``, pipeline/ingest/keys.py), so one
container's events stay in order on one partition. ``--batch N`` packs up
to N events of the same key into one NDJSON message, as collectors do, and
never more bytes than the worker takes in one message
(``PEREGRINE_MAX_MESSAGE_BYTES``). An event that cannot be sent as it is
(larger than that alone, or nested deeper than JSON is written here) is
skipped and reported, and the command exits 1. ``--now`` moves a recording's
times to the present, gaps kept (pipeline/ingest/retime.py), so its alerts
land in today's index, where dashboards and ``peregrine alerts report`` look.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Iterable

import orjson
import typer

from pipeline.errors import ConfigError, EventError
from pipeline.ingest.keys import audit_key, container_key


def _source(event: dict, hint: str | None) -> str:
    if hint:
        return hint
    if "evt.type" in event or "container.id" in event or "proc.name" in event:
        return "syscall"
    if event.get("kind") == "Event" and "auditID" in event:
        return "k8s_audit"
    if "eventName" in event and "eventSource" in event:
        return "aws_cloudtrail"
    try:
        from pipeline.fields import detect_source  # type: ignore[attr-defined]
    except ImportError:
        detect_source = None
    found = detect_source(event) if detect_source else None
    if not found:
        raise EventError(f"cannot tell the source of an event with keys {', '.join(sorted(event)[:5])}; pass --topic")
    return found


def key_of(event: dict, source: str) -> bytes | None:
    if source == "syscall":
        return container_key(event).encode()
    if source == "k8s_audit":
        return audit_key(event)  # as the webhook keys it
    account = event.get("recipientAccountId")
    return str(account).encode() if account else None


def load_events(paths: Iterable[str]) -> list[tuple[dict, str | None]]:
    from pipeline.event_input import BadRecord, read_events

    events: list[tuple[dict, str | None]] = []
    for path in paths:
        try:
            for record in read_events(path):
                if isinstance(record, BadRecord):
                    raise EventError(f"{record.where}: {record.message}")
                events.append((record.event, record.source_hint))
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    return events


def moved_to_now(events: list[tuple[dict, str | None]], after_ns: int | None = None) -> list[tuple[dict, str | None]]:
    """The events shifted to end now, their gaps kept (pipeline/ingest/retime.py); with
    ``after_ns``, to begin after it when ending now would not."""
    from pipeline.ingest.retime import offset_to_end_at, retimed, time_range

    sourced = [(event, _source(event, hint)) for event, hint in events]
    found = time_range(sourced)
    if found is None:
        return events
    moved = retimed(sourced, offset_to_end_at(found, time.time_ns(), after_ns))
    return [(event, hint) for event, (_, hint) in zip(moved, events)]


async def produce(
    bootstrap: str,
    events: list[tuple[dict, str | None]],
    topics: dict[str, str],
    *,
    topic: str | None = None,
    rate: float = 0.0,
    batch: int = 1,
    progress=None,
    settings=None,
    max_message_bytes: int | None = None,
    skipped: list[str] | None = None,
) -> int:
    """Send events; returns messages sent. ``rate``: events per second (0: as fast as possible).

    ``settings``: PipelineSettings whose Kafka security options the producer uses (None: PLAINTEXT).
    ``max_message_bytes``: a message's most bytes (default: the settings', else 1 MiB); why
    each event not sent was not is appended to ``skipped``.
    """
    from aiokafka import AIOKafkaProducer

    from pipeline.stream.credentials import aiokafka_options, explain_kafka_failure
    from pipeline.stream.settings import DEFAULT_KAFKA_COMPRESSION

    security = aiokafka_options(settings) if settings is not None else {}
    # compressed record batches: the worker's fetches, and the bytes it copies, shrink several times
    compression = settings.compression_type if settings is not None else DEFAULT_KAFKA_COMPRESSION
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 1024 * 1024,
                                compression_type=compression, **security)
    from pipeline.stack.health import quiet_aiokafka

    connecting = time.monotonic()
    try:
        with quiet_aiokafka():  # its "Unable connect to ..." would come before our one line
            await asyncio.wait_for(producer.start(), 15)
    except Exception as error:  # noqa: BLE001
        await producer.stop()
        if settings is not None:
            with quiet_aiokafka():
                explained = await explain_kafka_failure(settings, bootstrap, 15, error, probe_s=15 - (time.monotonic() - connecting))
            raise ConfigError(explained) from None
        raise ConfigError(f"cannot reach Kafka at {bootstrap}: {type(error).__name__} {error}") from None
    if max_message_bytes is None:
        max_message_bytes = settings.max_message_bytes if settings is not None else 1 << 20
    sent = 0
    started = time.monotonic()
    pending = []
    try:
        await _check_topics_exist(producer, bootstrap, {topic or topics[_source(event, hint)] for event, hint in events},
                                  flag=topic is not None)
        groups: dict[tuple[str, bytes | None], list[bytes]] = defaultdict(list)
        sizes: dict[tuple[str, bytes | None], int] = defaultdict(int)  # a group's NDJSON bytes
        done = 0

        async def flush_group(target: str, key: bytes | None, lines: list[bytes]) -> None:
            nonlocal sent
            value = lines[0] if len(lines) == 1 else b"\n".join(lines)
            pending.append(await producer.send(target, value=value, key=key))
            sent += 1

        for number, (event, hint) in enumerate(events, start=1):
            done += 1
            if progress is not None:
                progress(1)
            source = _source(event, hint)
            target = topic or topics[source]
            key = key_of(event, source)
            try:
                line = orjson.dumps(event)
            except TypeError as error:  # nested deeper than orjson writes (it reads deeper)
                if skipped is not None:
                    skipped.append(f"event {number}: {error}")
                continue
            if len(line) > max_message_bytes:
                if skipped is not None:
                    skipped.append(f"event {number}: {len(line)} bytes, over the {max_message_bytes} of a message")
                continue
            slot = (target, key)
            group = groups[slot]
            if group and sizes[slot] + 1 + len(line) > max_message_bytes:
                await flush_group(target, key, group)
                group = groups[slot] = []
                sizes[slot] = 0
            group.append(line)
            sizes[slot] += len(line) + (1 if len(group) > 1 else 0)
            if len(group) >= batch:
                await flush_group(target, key, group)
                groups[slot] = []
                sizes[slot] = 0
            if rate > 0:
                ahead = done / rate - (time.monotonic() - started)
                if ahead > 0:
                    for (t, k), lines in list(groups.items()):
                        if lines:
                            await flush_group(t, k, lines)
                            groups[(t, k)] = []
                            sizes[(t, k)] = 0
                    await asyncio.sleep(ahead)
        for (t, k), lines in groups.items():
            if lines:
                await flush_group(t, k, lines)
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def _check_topics_exist(producer, bootstrap: str, targets: set[str], *, flag: bool) -> None:
    """The broker does not create topics: a send to a missing one waited 40 s, logging each
    metadata retry, and ended in a traceback."""
    from pipeline.stack.health import quiet_aiokafka

    try:
        with quiet_aiokafka():
            cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), 15)
    except Exception as error:  # noqa: BLE001 - a timeout or a KafkaError: no metadata
        raise ConfigError(f"Kafka at {bootstrap} did not answer a metadata request ({type(error).__name__})") from None
    missing = sorted(targets - cluster.topics())
    if missing:
        fix = "--topic" if flag else "the PEREGRINE_*_TOPIC settings"
        raise ConfigError(f"Kafka topic(s) missing on {bootstrap}: {', '.join(missing)}; create them with "
                          f"`peregrine stack provision` or fix {fix}")


def replay(
    files: list[str] = typer.Argument(..., help="Event files (JSON lines, arrays, EventLists)"),
    topic: str = typer.Option(None, "--topic", "-t", help="Send everything to this topic (default: each source's topic)"),
    rate: float = typer.Option(0.0, "--rate", help="Events per second (default: as fast as possible)"),
    batch: int = typer.Option(1, "--batch", help="Events per Kafka message (NDJSON), grouped by key"),
    now: bool = typer.Option(False, "--now", help="Move the events' times so the latest is now, keeping their gaps "
                             "(recorded events then alert in today's index)"),
) -> None:
    """Produce events from files to Peregrine's input topics."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.stream.settings import PipelineSettings

    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    if not 0 <= rate < float("inf"):  # also nan
        raise ConfigError(f"--rate must be a number of events per second, 0 for as fast as possible; got {rate}")
    settings = PipelineSettings.from_env()
    events = load_events(files)
    if now:
        events = moved_to_now(events)
    topics = {"syscall": settings.syscall_topic, "k8s_audit": settings.k8s_audit_topic, "aws_cloudtrail": settings.cloudtrail_topic}
    skipped: list[str] = []
    with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("events", total=len(events))
        sent = asyncio.run(produce(settings.broker, events, topics, topic=topic, rate=rate, batch=batch,
                                   progress=lambda n: bar.advance(task, n), settings=settings, skipped=skipped))
    for reason in skipped:
        typer.echo(f"not sent: {reason}", err=True)
    typer.echo(f"replayed {len(events) - len(skipped)} events in {sent} messages"
               + (f"; {len(skipped)} not sent" if skipped else ""))
    if skipped:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.command("replay")(replay)
