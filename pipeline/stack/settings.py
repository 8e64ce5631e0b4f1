"""Every default of the local stack in one place: versions, ports, topics, index.

The local runner (`peregrine stack up`), the tests, docker-compose.yml (checked
by tests/unit/test_docker_compose.py) and the workers all read these, so a
version or a port is changed here and nowhere else. Values come from
``PEREGRINE_*`` environment variables when set, else from the defaults below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pipeline.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

# Kafka 4.x brokers need Java 17+; OpenSearch 2.x runs on 17 (3.x needs 21).
KAFKA_VERSION = "4.3.1"
OPENSEARCH_VERSION = "2.19.6"

HOST = "127.0.0.1"
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
# A second Kafka listener, SASL_PLAINTEXT with PLAIN and SCRAM-SHA-256 for one user, on loopback:
# where the worker's credential settings are tested for real (tests/integration/test_kafka_credentials.py).
KAFKA_SASL_PORT = 9094
KAFKA_SASL_USER = "peregrine"
KAFKA_SASL_PASSWORD = "peregrine-local"  # a local test user on loopback, not a secret
# A third, SSL (TLS, no client certificate) with a certificate from a local CA that `peregrine
# stack up` makes once (keytool; <home>/kafka-tls/ca.pem is what clients trust): where
# PEREGRINE_KAFKA_SECURITY_PROTOCOL=SSL and PEREGRINE_KAFKA_CA_FILE are tested for real.
KAFKA_SSL_PORT = 9095
# And SASL_SSL: the SASL listener's users (PLAIN, SCRAM-SHA-256) over the SSL listener's TLS.
KAFKA_SASL_SSL_PORT = 9096
OPENSEARCH_PORT = 9200
DASHBOARDS_PORT = 5601

SYSCALL_TOPIC = "peregrine.events.syscall"
K8S_AUDIT_TOPIC = "peregrine.events.k8s_audit"
CLOUDTRAIL_TOPIC = "peregrine.events.cloudtrail"
ALERTS_TOPIC = "peregrine.alerts"
DEADLETTER_TOPIC = "peregrine.deadletter"

ALERTS_INDEX_PREFIX = "peregrine-alerts-"
ALERTS_TEMPLATE_NAME = "peregrine-alerts"


def _default_home() -> Path:
    """`<repo>/.peregrine` in a source checkout (git-ignored), else `~/.peregrine`."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".peregrine"
    return Path.home() / ".peregrine"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic Peregrine creates: name and partition count (replication is 1 locally)."""

    name: str
    partitions: int


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where the local stack lives, what it runs and how it is reached."""

    home: Path = field(default_factory=_default_home)
    kafka_version: str = KAFKA_VERSION
    opensearch_version: str = OPENSEARCH_VERSION
    host: str = HOST
    kafka_port: int = KAFKA_PORT
    kafka_controller_port: int = KAFKA_CONTROLLER_PORT
    kafka_sasl_port: int = KAFKA_SASL_PORT
    kafka_ssl_port: int = KAFKA_SSL_PORT
    kafka_sasl_ssl_port: int = KAFKA_SASL_SSL_PORT
    opensearch_port: int = OPENSEARCH_PORT
    kafka_heap: str = "512m"
    opensearch_heap: str = "512m"
    start_timeout_s: float = 180.0
    input_partitions: int = 4
    alert_partitions: int = 4
    deadletter_partitions: int = 1
    # OpenSearch refuses to run as root; when we are root it runs as this system user.
    opensearch_user: str = "peregrine-os"
    # Where clients connect; defaults follow host and ports, overridden for containers.
    kafka_bootstrap_override: str | None = None
    opensearch_url_override: str | None = None
    alerts_template_path: Path = REPO_ROOT / "deploy" / "opensearch" / "alerts-template.json"

    # -- what clients use -------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"{self.host}:{self.kafka_port}"

    @property
    def kafka_sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256) of the local Kafka: user KAFKA_SASL_USER."""
        return f"{self.host}:{self.kafka_sasl_port}"

    @property
    def kafka_ssl_bootstrap(self) -> str:
        """The SSL listener of the local Kafka (server certificate from the local CA: kafka_ca_file)."""
        return f"{self.host}:{self.kafka_ssl_port}"

    @property
    def kafka_sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener of the local Kafka: the SASL users over TLS (kafka_ca_file)."""
        return f"{self.host}:{self.kafka_sasl_ssl_port}"

    @property
    def kafka_tls_dir(self) -> Path:
        return self.home / "kafka-tls"

    @property
    def kafka_ca_file(self) -> Path:
        """The local CA's certificate (PEM), what a client of the SSL listener trusts."""
        return self.kafka_tls_dir / "ca.pem"

    @property
    def opensearch_url(self) -> str:
        return self.opensearch_url_override or f"http://{self.host}:{self.opensearch_port}"

    @property
    def topics(self) -> tuple[TopicSpec, ...]:
        return (
            TopicSpec(SYSCALL_TOPIC, self.input_partitions),
            TopicSpec(K8S_AUDIT_TOPIC, self.input_partitions),
            TopicSpec(CLOUDTRAIL_TOPIC, self.input_partitions),
            TopicSpec(ALERTS_TOPIC, self.alert_partitions),
            TopicSpec(DEADLETTER_TOPIC, self.deadletter_partitions),
        )

    # -- runtime layout under home ---------------------------------------------

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def opensearch_dir(self) -> Path:
        return self.home / "opensearch"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "StackSettings":
        """Defaults overridden by ``PEREGRINE_*`` variables; a bad value is a ConfigError."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, (key, kind) in _ENV.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[key] = _convert(name, raw.strip(), kind)
        settings = cls(**values)  # type: ignore[arg-type]
        ports = [settings.kafka_port, settings.kafka_controller_port, settings.kafka_sasl_port, settings.kafka_ssl_port,
                 settings.kafka_sasl_ssl_port, settings.opensearch_port]
        if len(set(ports)) != len(ports):
            raise ConfigError(
                f"Kafka, Kafka controller, Kafka SASL, SSL and SASL_SSL, and OpenSearch ports must differ, got {ports} "
                "(PEREGRINE_KAFKA_PORT, PEREGRINE_KAFKA_CONTROLLER_PORT, PEREGRINE_KAFKA_SASL_PORT, PEREGRINE_KAFKA_SSL_PORT, "
                "PEREGRINE_KAFKA_SASL_SSL_PORT, PEREGRINE_OPENSEARCH_PORT)"
            )
        return settings


_ENV: dict[str, tuple[str, str]] = {
    "PEREGRINE_HOME": ("home", "path"),
    "PEREGRINE_KAFKA_VERSION": ("kafka_version", "version"),
    "PEREGRINE_OPENSEARCH_VERSION": ("opensearch_version", "version"),
    "PEREGRINE_KAFKA_PORT": ("kafka_port", "port"),
    "PEREGRINE_KAFKA_CONTROLLER_PORT": ("kafka_controller_port", "port"),
    "PEREGRINE_KAFKA_SASL_PORT": ("kafka_sasl_port", "port"),
    "PEREGRINE_KAFKA_SSL_PORT": ("kafka_ssl_port", "port"),
    "PEREGRINE_KAFKA_SASL_SSL_PORT": ("kafka_sasl_ssl_port", "port"),
    "PEREGRINE_OPENSEARCH_PORT": ("opensearch_port", "port"),
    "PEREGRINE_KAFKA_HEAP": ("kafka_heap", "heap"),
    "PEREGRINE_OPENSEARCH_HEAP": ("opensearch_heap", "heap"),
    "PEREGRINE_STACK_TIMEOUT": ("start_timeout_s", "seconds"),
    "PEREGRINE_INPUT_PARTITIONS": ("input_partitions", "count"),
    "PEREGRINE_ALERT_PARTITIONS": ("alert_partitions", "count"),
    "PEREGRINE_OPENSEARCH_USER": ("opensearch_user", "name"),
    "PEREGRINE_KAFKA_BOOTSTRAP": ("kafka_bootstrap_override", "name"),
    "PEREGRINE_OPENSEARCH_URL": ("opensearch_url_override", "name"),
    "PEREGRINE_ALERTS_TEMPLATE": ("alerts_template_path", "path"),
}


#: the bound of every duration setting: ten years (an event-time ttl is kept in int64 nanoseconds)
MAX_SECONDS = 315_360_000


def checked_seconds(label: str, value: float) -> float:
    """``value``, a duration setting named ``label``, when it is positive and at most ten years;
    else a ConfigError (``nan`` too: a deadline it sets is never reached)."""
    if not 0 < value <= MAX_SECONDS:
        raise ConfigError(f"{label} must be a positive number of seconds up to {MAX_SECONDS:,} (ten years), got {value}")
    return value


def _convert(name: str, raw: str, kind: str) -> object:
    if kind == "path":
        return Path(raw).expanduser().resolve()
    if kind in ("port", "count"):
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        low, high = (1, 65535) if kind == "port" else (1, 1024)
        if not low <= number <= high:
            raise ConfigError(f"{name}={raw} is out of range {low}..{high}")
        return number
    if kind == "seconds":
        try:
            seconds = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
        return checked_seconds(name, seconds)
    if kind == "heap":
        if not (raw[:-1].isdigit() and raw[-1].lower() in "mg"):
            raise ConfigError(f"{name}={raw!r} is not a heap size like 512m or 1g")
        return raw
    if kind == "version":
        parts = raw.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"{name}={raw!r} is not a version like 1.2.3")
        return raw
    return raw


DEFAULTS = StackSettings()
