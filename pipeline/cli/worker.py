"""`peregrine worker`: the Faust worker with Peregrine's settings.

Before Faust starts, it checks what Faust would otherwise wait on forever
or crash on later: the broker answers, the input/alert/dead-letter topics
exist, the syscall topic's partition count, the rules load, the web port is
free, the state directory is writable, OpenSearch takes the credentials (an OpenSearch that does not answer
is an outage, not a misconfiguration: a warning). A misconfiguration exits
2 with one clear line within ``PEREGRINE_STARTUP_TIMEOUT_S``. Then the process becomes the Faust worker
(exec), so signals and exit codes are the worker's own.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import typer

from pipeline.errors import ConfigError


async def check_kafka(settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from pipeline.stack.health import quiet_aiokafka
    from pipeline.stream.credentials import aiokafka_options, explain_kafka_failure

    wanted = [settings.syscall_topic, settings.k8s_audit_topic, settings.cloudtrail_topic, settings.alerts_topic, settings.deadletter_topic]
    if settings.ocsf_topic:
        wanted.append(settings.ocsf_topic)
    timeout = settings.startup_timeout_s
    started = asyncio.get_running_loop().time()
    with quiet_aiokafka():
        security = aiokafka_options(settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, request_timeout_ms=int(timeout * 1000), **security)
        try:
            await asyncio.wait_for(admin.start(), timeout)
            topics = set(await asyncio.wait_for(admin.list_topics(), timeout))
            # co-partitioned with the state tables (K8s audit and CloudTrail need not be: pipeline/correlation/table.py)
            keyed = [t for t in (settings.syscall_topic, settings.repartition_topic, settings.regroup_topic) if t in topics]
            described = {d["topic"]: len(d.get("partitions") or ())
                         for d in await asyncio.wait_for(admin.describe_topics(keyed + [settings.alerts_topic]), timeout)}
            alert_partitions = max(1, described.get(settings.alerts_topic, 1))
        except (asyncio.TimeoutError, Exception) as error:  # noqa: BLE001
            failure = error
        else:
            failure = None
        finally:
            await admin.close()
        if failure is not None:
            left = timeout - (asyncio.get_running_loop().time() - started)
            raise ConfigError(await explain_kafka_failure(settings, settings.broker, timeout, failure, probe_s=left))
    missing = [t for t in wanted if t not in topics]
    if missing:
        raise ConfigError(
            f"Kafka topic(s) missing on {settings.broker}: {', '.join(missing)}; "
            "create them with `peregrine stack provision` (or `peregrine stack up`) or fix the PEREGRINE_*_TOPIC settings"
        )
    # the process-tree table is co-partitioned with the syscall topic (Faust refuses an event from
    # a topic with another partition count at the first event: a crash, not a message)
    other = {t: n for t in keyed if (n := described.get(t)) != settings.partitions}
    if other:
        raise ConfigError(
            f"PEREGRINE_PARTITIONS is {settings.partitions} but {', '.join(f'{t} has {n}' for t, n in other.items())} "
            "partition(s); the worker's state tables need the syscall topic's count: set PEREGRINE_PARTITIONS to it "
            "(a repartition or regroup topic of this app id made with another count must be deleted, or the app id changed)")
    # The repartition and regroup topics are the worker's own (named after its app id): created here.
    from pipeline.stack.provision import ensure_topics
    from pipeline.stack.settings import TopicSpec

    await ensure_topics(settings.broker, [TopicSpec(settings.repartition_topic, settings.partitions),
                                          TopicSpec(settings.regroup_topic, settings.partitions)], timeout_s=timeout, **security)
    # So are the priority topics when alerts are routed by priority (the broker does not auto-create
    # topics, and a send to a missing one would stop the worker), as many partitions as the alert topic.
    if settings.route_by_priority:
        await ensure_topics(settings.broker, [TopicSpec(t, alert_partitions) for t in settings.priority_topics().values()], timeout_s=timeout,
                            **security)


async def check_opensearch(settings, warn=None) -> None:
    """Refused credentials or a failed TLS handshake are a misconfiguration: ConfigError. An
    OpenSearch that does not answer is an outage: the worker starts, holds its alerts and
    retries (``warn`` is told so)."""
    from opensearchpy import AsyncOpenSearch
    from opensearchpy import exceptions as os_errors

    from pipeline.stream.credentials import opensearch_options

    url = settings.opensearch_url
    client = AsyncOpenSearch(hosts=[url], timeout=settings.startup_timeout_s, max_retries=0, **opensearch_options(settings))
    try:
        await asyncio.wait_for(client.info(), settings.startup_timeout_s)
    except (os_errors.AuthenticationException, os_errors.AuthorizationException) as error:
        user = settings.opensearch_username or "(none)"
        raise ConfigError(f"OpenSearch at {url} refused the credentials of user {user} (HTTP {error.status_code}): "
                          "check PEREGRINE_OPENSEARCH_USERNAME/PASSWORD") from None
    except (asyncio.TimeoutError, os_errors.TransportError) as error:
        tls = _tls_failure(error)
        if tls is not None:
            raise ConfigError(f"TLS to OpenSearch at {url} failed ({tls}): check the scheme of PEREGRINE_OPENSEARCH_URL "
                              "and PEREGRINE_OPENSEARCH_CA_FILE") from None
        status = getattr(error, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and status != 429:  # an answer, not an outage
            raise ConfigError(f"OpenSearch at {url} answered HTTP {status} to GET / ({type(error).__name__}): "
                              "is PEREGRINE_OPENSEARCH_URL an OpenSearch?") from None
        if warn is not None:
            what = f"answers HTTP {status}" if isinstance(status, int) else "does not answer"
            warn(f"OpenSearch at {url} {what} ({type(error).__name__}); the worker starts, and holds its "
                 "alerts (offsets uncommitted) until it is back")
    finally:
        await client.close()


def _tls_failure(error: BaseException) -> BaseException | None:
    """The ssl.SSLError under an OpenSearch client's connection error (aiohttp's, in ``info``)."""
    import ssl

    info = getattr(error, "info", None)
    for candidate in (info, getattr(info, "os_error", None), error.__cause__):
        if isinstance(candidate, ssl.SSLError):
            return candidate
    return None


def check_web_port(port: int) -> None:
    """Faust's web server (/health, /metrics) binds all interfaces on ``port``; one that is taken
    would stop the worker after start-up with a traceback."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds it
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            raise ConfigError(f"the worker's web port {port} (/health, /metrics) is taken: {error.strerror}; "
                              "set PEREGRINE_WEB_PORT or --web-port to a free port") from None


def check_data_dir(settings) -> None:
    """The worker's state directory (``PEREGRINE_DATA_DIR``/<app id>: Faust's table and offset
    files) exists and takes a file; made here if it is missing."""
    import tempfile

    state = settings.data_dir / settings.app_id
    try:
        state.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state):
            pass
    except OSError as error:
        raise ConfigError(f"PEREGRINE_DATA_DIR={settings.data_dir}: cannot write the worker's state directory {state} "
                          f"({error.strerror or error}); set PEREGRINE_DATA_DIR to a writable directory") from None


def worker(
    web_port: int = typer.Option(None, "--web-port", help="Port of /health and /metrics (default PEREGRINE_WEB_PORT or 6066)"),
    store: str = typer.Option(None, "--store", help="rocksdb or memory (default PEREGRINE_STORE or rocksdb)"),
    app_id: str = typer.Option(None, "--app-id", help="Consumer group and table prefix (default PEREGRINE_APP_ID)"),
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="debug, info, warning, error"),
) -> None:
    """Run a detection worker: Kafka events in, alerts to Kafka and OpenSearch."""
    from pipeline.stream.delivery import build_processor
    from pipeline.stream.settings import PipelineSettings

    if web_port is not None:
        os.environ["PEREGRINE_WEB_PORT"] = str(web_port)
    if store is not None:
        os.environ["PEREGRINE_STORE"] = store
    if app_id is not None:
        os.environ["PEREGRINE_APP_ID"] = app_id
    level = {"warning": "warn", "critical": "crit"}.get(loglevel.lower(), loglevel.lower())
    if level not in ("crit", "error", "warn", "info", "debug"):
        raise ConfigError(f"--loglevel must be one of debug, info, warning, error, critical; got {loglevel!r}")
    settings = PipelineSettings.from_env()
    check_web_port(settings.web_port)
    check_data_dir(settings)
    build_processor(settings)  # rules and field registries load, or a clear error now
    asyncio.run(check_kafka(settings))
    asyncio.run(check_opensearch(settings, warn=lambda line: print(f"warning: {line}", file=sys.stderr)))
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "faust", "-A", "agents.detect:app", "worker", "-l", level,
            "--web-port", str(settings.web_port), "--web-host", "127.0.0.1"]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


def register(root: typer.Typer) -> None:
    root.command("worker")(worker)
