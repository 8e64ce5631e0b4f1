"""`up`, `down` and `status` of the local stack: the order of things, nothing more.

`up` installs what is missing (cached), reuses a healthy server that is
already running (ours, or one on the same port that answers like the right
server, e.g. from docker compose), starts the rest, waits until both answer
the questions clients will ask, then creates the topics and the alert index
template. A file lock makes concurrent `up`s (two test sessions) take turns:
the second one finds the stack running and reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from pipeline.errors import StackError
from pipeline.stack import kafka, opensearch
from pipeline.stack.health import kafka_health, opensearch_health
from pipeline.stack.marker import check_marker
from pipeline.stack.ports import describe_pid, ensure_port_free, listener_pid, port_in_use
from pipeline.stack.process import ServerProcess, alive, log_tail, running_pid, start_detached, stop
from pipeline.stack.provision import ensure_topics, install_index_template
from pipeline.stack.settings import StackSettings
from pipeline.stack.toolchain import find_java

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server as `status` (and the end of `up`) sees it."""

    name: str
    version: str
    port: int
    pid: int | None
    ours: bool  # started by peregrine (pid file and command line match)
    ready: bool
    health: str
    log: Path


@dataclass(frozen=True, slots=True)
class UpResult:
    servers: tuple[ServerState, ...]
    started: tuple[str, ...]  # servers this call started (the others were reused)
    notes: tuple[str, ...]
    seconds: float


@contextlib.contextmanager
def stack_lock(settings: StackSettings, say: Say):
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.run_dir / "stack.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another `peregrine stack` command to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


async def up(settings: StackSettings, say: Say = print) -> UpResult:
    began = time.monotonic()
    with stack_lock(settings, say):
        for directory in (settings.home, settings.data_dir, settings.logs_dir, settings.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        settings.home.chmod(0o755)
        java = find_java()

        # Decide first, so a taken port fails before anything is downloaded or started.
        k_server, o_server = kafka.server(settings), opensearch.server(settings)
        k_pid, o_pid = running_pid(k_server), running_pid(o_server)
        k_foreign = k_pid is None and await _foreign_kafka(settings)
        o_foreign = o_pid is None and _foreign_opensearch(settings)
        if k_pid is None and not k_foreign:
            ensure_port_free(settings.host, settings.kafka_port, "Kafka", "PEREGRINE_KAFKA_PORT")
            ensure_port_free(settings.host, settings.kafka_controller_port, "the Kafka controller", "PEREGRINE_KAFKA_CONTROLLER_PORT")
            ensure_port_free(settings.host, settings.kafka_sasl_port, "Kafka's SASL listener", "PEREGRINE_KAFKA_SASL_PORT")
            ensure_port_free(settings.host, settings.kafka_ssl_port, "Kafka's SSL listener", "PEREGRINE_KAFKA_SSL_PORT")
            ensure_port_free(settings.host, settings.kafka_sasl_ssl_port, "Kafka's SASL_SSL listener", "PEREGRINE_KAFKA_SASL_SSL_PORT")
        if o_pid is None and not o_foreign:
            ensure_port_free(settings.host, settings.opensearch_port, "OpenSearch", "PEREGRINE_OPENSEARCH_PORT")

        # Never reinstall under a running server (a version change, a damaged install).
        for name, pid, root, version in (
            ("kafka", k_pid, settings.kafka_dir, settings.kafka_version),
            ("opensearch", o_pid, settings.opensearch_dir, settings.opensearch_version),
        ):
            check = check_marker(root, version)
            if pid is not None and not check.ok:
                raise StackError(
                    f"{name} is running (pid {pid}) but its install needs replacing ({check.reason}): "
                    "run `peregrine stack down` first"
                )
        kafka.install(settings, java, say)
        opensearch.install(settings, java, say)

        started: list[str] = []
        notes: list[str] = []
        waits: list[Awaitable[None]] = []

        if k_pid is not None:
            say(f"kafka: already running (pid {k_pid})")
        elif k_foreign:
            notes.append(f"kafka: using the Kafka already answering on {settings.kafka_bootstrap} (not started by peregrine)")
        else:
            kafka.ensure_tls(settings, java, say)
            properties, log4j = kafka.configure(settings)
            kafka.format_storage_if_needed(settings, java, properties, log4j, say)
            k_pid = start_detached(
                k_server, kafka.argv(settings, java, properties, log4j),
                env=kafka.environment(java), cwd=settings.home, log_path=kafka.log_path(settings),
            )
            started.append("kafka")
            say(f"kafka: started (pid {k_pid}), waiting until it answers on {settings.kafka_bootstrap}")
        waits.append(_wait_ready(
            settings, k_server, k_pid if "kafka" in started else None, kafka.log_path(settings),
            lambda: _kafka_ready(settings),
        ))

        if o_pid is not None:
            say(f"opensearch: already running (pid {o_pid})")
        elif o_foreign:
            notes.append(f"opensearch: using the OpenSearch already answering on {settings.opensearch_url} (not started by peregrine)")
        else:
            owner = opensearch.run_as(settings)
            opensearch.configure(settings, owner)
            o_pid = start_detached(
                o_server, opensearch.argv(settings), env=opensearch.environment(settings, java),
                cwd=settings.opensearch_dir, log_path=opensearch.log_path(settings), user=owner,
            )
            started.append("opensearch")
            as_user = f" as user {settings.opensearch_user}" if owner else ""
            say(f"opensearch: started (pid {o_pid}){as_user}, waiting for cluster health yellow or green")
        waits.append(_wait_ready(
            settings, o_server, o_pid if "opensearch" in started else None, opensearch.log_path(settings),
            lambda: _opensearch_ready(settings),
        ))

        results = await asyncio.gather(*waits, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        if "kafka" in started:  # (log4j: written when it was started, above)
            await asyncio.to_thread(kafka.add_scram_users_if_needed, settings, java, log4j, say)

        notes += await ensure_topics(settings.kafka_bootstrap, settings.topics)
        say(f"kafka: topics ready: {', '.join(t.name for t in settings.topics)}")
        install_index_template(settings.opensearch_url, settings.alerts_template_path)
        say(f"opensearch: index template installed from {settings.alerts_template_path.name}")
        servers = await status(settings)
    return UpResult(tuple(servers), tuple(started), tuple(notes), time.monotonic() - began)


async def _foreign_kafka(settings: StackSettings) -> bool:
    """A Kafka we did not start, answering on our port (e.g. docker compose)?"""
    if not port_in_use(settings.host, settings.kafka_port):
        return False
    return await kafka_health(settings.kafka_bootstrap, timeout_s=3.0) is not None


def _foreign_opensearch(settings: StackSettings) -> bool:
    """An OpenSearch we did not start, answering on our port?"""
    if not port_in_use(settings.host, settings.opensearch_port):
        return False
    return opensearch_health(settings.opensearch_url) is not None


async def _kafka_ready(settings: StackSettings) -> bool:
    return await kafka_health(settings.kafka_bootstrap, timeout_s=3.0) is not None


async def _opensearch_ready(settings: StackSettings) -> bool:
    health = await asyncio.to_thread(opensearch_health, settings.opensearch_url, 3.0)
    return health is not None and health.ready


async def _wait_ready(
    settings: StackSettings,
    server: ServerProcess,
    started_pid: int | None,
    log: Path,
    probe: Callable[[], Awaitable[bool]],
) -> None:
    """Poll `probe` until it says ready. A server we started that dies or stays silent
    past the timeout is stopped, and the error shows the end of its log."""
    deadline = time.monotonic() + settings.start_timeout_s
    while True:
        if await probe():
            return
        if started_pid is not None and not alive(started_pid):
            server.pid_file.unlink(missing_ok=True)
            raise StackError(f"{server.name} exited while starting; log: {log}, last lines:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            if started_pid is not None:
                stop(server, started_pid, timeout_s=10)
            hint = "stopped it; raise PEREGRINE_STACK_TIMEOUT if the machine is slow" if started_pid else "try `peregrine stack down`"
            raise StackError(
                f"{server.name} was not ready within {settings.start_timeout_s:.0f}s ({hint}); "
                f"log: {log}, last lines:\n{log_tail(log)}"
            )
        await asyncio.sleep(0.5)


async def status(settings: StackSettings) -> list[ServerState]:
    k_pid = running_pid(kafka.server(settings))
    k_health = await kafka_health(settings.kafka_bootstrap, timeout_s=3.0)
    listeners = (f"SASL_PLAINTEXT listener (PLAIN, {', '.join(kafka.SCRAM_MECHANISMS)}) on {settings.kafka_sasl_port}"
                 if port_in_use(settings.host, settings.kafka_sasl_port)
                 else f"no SASL listener on {settings.kafka_sasl_port}: restart the stack")
    tls_ports = (settings.kafka_ssl_port, settings.kafka_sasl_ssl_port)
    listeners += (f", SSL and SASL_SSL listeners on {'/'.join(map(str, tls_ports))} (CA {settings.kafka_ca_file})"
                  if all(port_in_use(settings.host, port) for port in tls_ports)
                  else f", no SSL or SASL_SSL listener on {'/'.join(map(str, tls_ports))}: restart the stack")
    k_text = (
        f"ready (cluster {k_health.cluster_id}, {k_health.brokers} broker; {listeners})" if k_health else "not answering"
    )
    o_pid = running_pid(opensearch.server(settings))
    o_health = await asyncio.to_thread(opensearch_health, settings.opensearch_url, 3.0)
    o_text = f"cluster {o_health.status} ({o_health.distribution} {o_health.version})" if o_health else "not answering"
    return [
        ServerState(
            "kafka", _installed(settings.kafka_dir, settings.kafka_version), settings.kafka_port,
            k_pid or _foreign_pid(settings.kafka_port, k_health is not None), k_pid is not None,
            k_health is not None, k_text, kafka.log_path(settings),
        ),
        ServerState(
            "opensearch", _installed(settings.opensearch_dir, settings.opensearch_version), settings.opensearch_port,
            o_pid or _foreign_pid(settings.opensearch_port, o_health is not None), o_pid is not None,
            bool(o_health and o_health.ready), o_text, opensearch.log_path(settings),
        ),
    ]


def _installed(root: Path, version: str) -> str:
    check = check_marker(root, version)
    return version if check.ok else f"{version} ({check.reason})"


def _foreign_pid(port: int, answering: bool) -> int | None:
    return listener_pid(port) if answering else None


def down(settings: StackSettings, say: Say = print) -> list[str]:
    """Stop the servers peregrine started (OpenSearch first, then Kafka). Returns what was done."""
    done: list[str] = []
    with stack_lock(settings, say):
        for name, server, port in (
            ("opensearch", opensearch.server(settings), settings.opensearch_port),
            ("kafka", kafka.server(settings), settings.kafka_port),
        ):
            pid = running_pid(server)
            if pid is None:
                line = f"{name}: not running"
                if port_in_use(settings.host, port):
                    holder = listener_pid(port)
                    who = describe_pid(holder) if holder else "another process"
                    line += f" (port {port} is held by {who}, which peregrine did not start: left alone)"
            else:
                how = stop(server, pid, timeout_s=60)
                line = f"{name}: {how} (pid {pid})"
            say(line)
            done.append(line)
    return done
