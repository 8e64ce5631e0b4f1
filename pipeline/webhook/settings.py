"""The receiver's settings: where it listens, how it authenticates, its limits
and where its events go. Flags of ``peregrine webhook`` win over
``PEREGRINE_WEBHOOK_*`` variables, which win over the defaults; the broker
and topic come from the worker's settings (``PEREGRINE_KAFKA_BOOTSTRAP``,
``PEREGRINE_K8S_AUDIT_TOPIC``), so both sides agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import ConfigError

#: Falco's k8saudit plugin listens on :9765 at /k8s-audit; so does Peregrine.
DEFAULT_LISTEN = ":9765"
DEFAULT_PATH = "/k8s-audit"
#: The API server batches up to 400 events (--audit-webhook-batch-max-size) of up to
#: a few hundred KiB each at RequestResponse level.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONCURRENT = 4
#: One event must fit one Kafka message the worker accepts (PEREGRINE_MAX_MESSAGE_BYTES).
DEFAULT_MAX_EVENT_BYTES = 1_000_000
DEFAULT_PRODUCE_TIMEOUT_S = 10.0
DEFAULT_STARTUP_TIMEOUT_S = 15.0
#: A request's head, then its body, must arrive within this; the API server sends a batch at once.
DEFAULT_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Listen":
        """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT``."""
        raw = text.strip()
        host, sep, port_text = raw.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(f"--listen {text!r}: expected HOST:PORT, :PORT or [IPv6]:PORT with a port 0-65535")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host or "0.0.0.0", int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    broker: str
    topic: str
    listen: Listen = Listen("0.0.0.0", 9765)
    path: str = DEFAULT_PATH
    token: str | None = None  # the bearer token itself (PEREGRINE_WEBHOOK_TOKEN)
    token_file: Path | None = None  # or a file holding it, re-read when it changes
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # mutual TLS: the CAs whose client certificates may POST
    # and the identities (subject CN or DNS SAN) among them that may; empty: any the CAs signed
    client_names: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # posts read and held at once (a body costs 3 to 20 times its size in memory until Kafka
    # acks it); one more is answered 503 with Retry-After, which the API server retries
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    # connections open at once (each a file descriptor until the read timeout); one more is reset
    # as soon as it is accepted. None: the open-files limit less a reserve (open_files.py)
    max_connections: int | None = None
    produce_timeout_s: float = DEFAULT_PRODUCE_TIMEOUT_S  # Kafka must ack a request's events within this, else 503
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    # a connection's request head must arrive within this of its opening (or of its previous
    # answer: idle keep-alive connections close after it too), and the body within this of the head
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    pipeline: Any = None  # the PipelineSettings it came from: Kafka security options (None: PLAINTEXT)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError("--client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake")
        if self.client_names and self.client_ca is None:
            raise ConfigError("--client-name needs --client-ca: the names are read from client certificates the CA signed")
        if any(not name.strip() for name in self.client_names):
            raise ConfigError(f"--client-name: an empty name among {list(self.client_names)}")
        for name in ("tls_cert", "tls_key", "client_ca", "token_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"--{name.replace('_', '-')} {path}: no such file")
        if self.token is not None and self.token_file is not None:
            raise ConfigError("give the token either in a file (--token-file) or in PEREGRINE_WEBHOOK_TOKEN, not both")
        if self.token is not None and not self.token.strip():
            raise ConfigError("PEREGRINE_WEBHOOK_TOKEN is set but empty")
        if self.max_body_bytes < 1 or self.max_event_bytes < 1 or self.max_concurrent < 1:
            raise ConfigError("--max-body-bytes, PEREGRINE_WEBHOOK_MAX_EVENT_BYTES and PEREGRINE_WEBHOOK_MAX_CONCURRENT "
                              "must be at least 1")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(f"--max-connections (or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) is {self.max_connections}: "
                              "it must be at least 1; leave it unset for the default, which the open-files limit sets")
        if not self.path.startswith("/"):
            raise ConfigError(f"the webhook path must start with '/', got {self.path!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: object) -> "WebhookSettings":
        """Settings from ``PEREGRINE_*`` variables; ``flags`` that are not None win."""
        from pipeline.stack.settings import checked_seconds
        from pipeline.stream.settings import PipelineSettings

        env = os.environ if env is None else env
        pipeline = PipelineSettings.from_env(env)

        def get(name: str) -> str | None:
            value = env.get(f"PEREGRINE_WEBHOOK_{name}")
            return value.strip() if value is not None and value.strip() != "" else None

        def number(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f"PEREGRINE_WEBHOOK_{name}={raw!r} is not a whole number") from None

        def seconds(name: str, default: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"PEREGRINE_WEBHOOK_{name}={raw!r} is not a number") from None
            return checked_seconds(f"PEREGRINE_WEBHOOK_{name}", value)

        listen = flags.get("listen") or get("LISTEN") or DEFAULT_LISTEN
        token_file = flags.get("token_file") or get("TOKEN_FILE")
        cert = flags.get("tls_cert") or get("TLS_CERT")
        key = flags.get("tls_key") or get("TLS_KEY")
        client_ca = flags.get("client_ca") or get("CLIENT_CA")
        max_body = flags.get("max_body_bytes")
        max_connections = flags.get("max_connections")
        if max_connections is None and get("MAX_CONNECTIONS") is not None:
            max_connections = number("MAX_CONNECTIONS", 0)
        read_timeout = flags.get("read_timeout_s")
        names = flags.get("client_names")
        # flags one name each (a CN may hold a comma); the variable's names are separated by commas
        client_names = (tuple(str(n).strip() for n in names) if names  # type: ignore[attr-defined]
                        else tuple(n.strip() for n in (get("CLIENT_NAMES") or "").split(",") if n.strip()))
        settings = cls(
            broker=pipeline.broker,
            topic=pipeline.k8s_audit_topic,
            listen=Listen.parse(str(listen)),
            path=get("PATH") or DEFAULT_PATH,
            token=env.get("PEREGRINE_WEBHOOK_TOKEN") if env.get("PEREGRINE_WEBHOOK_TOKEN") is not None else None,
            token_file=Path(str(token_file)) if token_file else None,
            tls_cert=Path(str(cert)) if cert else None,
            tls_key=Path(str(key)) if key else None,
            client_ca=Path(str(client_ca)) if client_ca else None,
            client_names=client_names,  # type: ignore[arg-type]
            max_body_bytes=int(max_body) if max_body is not None else number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),  # type: ignore[arg-type]
            max_event_bytes=number("MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES),
            max_concurrent=number("MAX_CONCURRENT", DEFAULT_MAX_CONCURRENT),
            max_connections=int(max_connections) if max_connections is not None else None,  # type: ignore[arg-type]
            produce_timeout_s=seconds("PRODUCE_TIMEOUT_S", DEFAULT_PRODUCE_TIMEOUT_S),
            startup_timeout_s=seconds("STARTUP_TIMEOUT_S", DEFAULT_STARTUP_TIMEOUT_S),
            read_timeout_s=(checked_seconds("--read-timeout", float(read_timeout)) if read_timeout is not None  # type: ignore[arg-type]
                            else seconds("READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S)),
            pipeline=pipeline,
        )
        settings.check()
        return settings
