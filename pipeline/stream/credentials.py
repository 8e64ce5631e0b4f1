"""Kafka and OpenSearch credentials from PipelineSettings, as each client wants them.

- ``aiokafka_options``: keyword arguments for AIOKafkaProducer / AIOKafkaAdminClient.
- ``faust_credentials``: Faust's ``broker_credentials`` (SASLCredentials / SSLCredentials).
- ``opensearch_options``: keyword arguments for (Async)OpenSearch (basic auth, CA file).
- ``explain_kafka_failure``: when a client could not start, one line naming the cause.
  aiokafka's bootstrap only logs why each connection failed and then raises
  "Unable to bootstrap"; this opens one connection itself to learn the real
  error (wrong SASL credentials, a mechanism the broker does not enable, TLS).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from pipeline.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def uses_sasl(settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def uses_tls(settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def kafka_password(settings) -> str:
    """PEREGRINE_KAFKA_SASL_PASSWORD, or the first line of PEREGRINE_KAFKA_SASL_PASSWORD_FILE."""
    if settings.kafka_sasl_password_file is not None:
        try:
            text = settings.kafka_sasl_password_file.read_text()
        except OSError as error:
            raise ConfigError(
                f"PEREGRINE_KAFKA_SASL_PASSWORD_FILE {settings.kafka_sasl_password_file}: {error.strerror or error}"
            ) from None
        return text.splitlines()[0] if text.strip() else ""
    return settings.kafka_sasl_password


def kafka_ssl_context(settings) -> ssl.SSLContext | None:
    if not uses_tls(settings):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = str(settings.kafka_ca_file) if settings.kafka_ca_file is not None else None
    try:
        return create_ssl_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"PEREGRINE_KAFKA_CA_FILE {settings.kafka_ca_file}: {error}") from None


def aiokafka_options(settings) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        options["ssl_context"] = kafka_ssl_context(settings)
    if uses_sasl(settings):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = kafka_password(settings)
    return options


def faust_credentials(settings):
    """Faust's ``broker_credentials``; None for PLAINTEXT."""
    import faust

    if uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=kafka_password(settings),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=kafka_ssl_context(settings),
        )
    if uses_tls(settings):
        return faust.SSLCredentials(kafka_ssl_context(settings))
    return None


def opensearch_options(settings) -> dict[str, Any]:
    """Basic auth and CA file for the OpenSearch clients; empty when none is set."""
    options: dict[str, Any] = {}
    if settings.opensearch_username:
        options["http_auth"] = (settings.opensearch_username, settings.opensearch_password)
    if settings.opensearch_ca_file is not None:
        options["ca_certs"] = str(settings.opensearch_ca_file)
        options["verify_certs"] = True
    return options


def _first_address(broker: str) -> tuple[str, int]:
    first = broker.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    try:
        return host.strip("[]") or first, int(port)
    except ValueError:
        return first, 9092


async def explain_kafka_failure(settings, broker: str, timeout_s: float, error: BaseException,
                                probe_s: float | None = None) -> str:
    """One line saying why the clients could not talk to ``broker`` within ``timeout_s``.
    ``probe_s``: how long the probe connection may take (default ``timeout_s``): what is left
    of the caller's budget, so a broker that never answers costs it once, not twice."""
    from aiokafka import errors as kafka_errors
    from aiokafka.conn import create_conn

    host, port = _first_address(broker)
    user = settings.kafka_sasl_username
    cause: BaseException = error
    probe_s = timeout_s if probe_s is None else max(1.0, min(probe_s, timeout_s))
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(probe_s * 1000), **aiokafka_options(settings)), probe_s
        )
        conn.close()
    except ConfigError:
        raise
    except BaseException as probe_error:  # noqa: BLE001 - what the probe hit is the cause
        if isinstance(probe_error, (KeyboardInterrupt, SystemExit)):
            raise
        cause = probe_error
    name = type(cause).__name__
    if isinstance(cause, kafka_errors.SaslAuthenticationFailed):
        return (f"Kafka at {host}:{port} refused the SASL credentials of user {user or '(empty)'} ({name}): "
                "check PEREGRINE_KAFKA_SASL_USERNAME/PASSWORD")
    if isinstance(cause, kafka_errors.UnsupportedSaslMechanismError):
        return (f"Kafka at {host}:{port} does not enable SASL mechanism {settings.kafka_sasl_mechanism} ({name}): "
                "check PEREGRINE_KAFKA_SASL_MECHANISM and PEREGRINE_KAFKA_SECURITY_PROTOCOL")
    if isinstance(cause, kafka_errors.IllegalSaslStateError):
        return (f"Kafka at {host}:{port} does not speak SASL on this listener ({name}): "
                "check PEREGRINE_KAFKA_SECURITY_PROTOCOL and the port of PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP")
    if isinstance(cause, socket.gaierror):
        return (f"Kafka broker {broker}: host name {host} does not resolve ({name}: {cause.strerror or cause}): "
                "check PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP")
    if isinstance(cause, ConnectionRefusedError):
        return (f"Kafka broker {broker} refused the connection ({name}): nothing listens on {host}:{port}; is it running "
                "(`peregrine stack status`), and is PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP right?")
    if uses_tls(settings) and isinstance(cause, (ConnectionError, ssl.SSLEOFError)):
        return (f"Kafka at {host}:{port} closed the connection during the TLS handshake ({name}): is it a TLS listener? "
                f"check PEREGRINE_KAFKA_SECURITY_PROTOCOL ({settings.kafka_security_protocol}) and the port of "
                "PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP")
    if isinstance(cause, ssl.SSLError):
        return (f"TLS to Kafka at {host}:{port} failed ({name}: {cause}): "
                "check PEREGRINE_KAFKA_CA_FILE and PEREGRINE_KAFKA_SECURITY_PROTOCOL")
    if not uses_tls(settings) and isinstance(cause, (ConnectionError, kafka_errors.KafkaConnectionError)):
        return (f"Kafka at {host}:{port} closed the connection without answering ({name}): is it a Kafka listener for "
                f"PEREGRINE_KAFKA_SECURITY_PROTOCOL ({settings.kafka_security_protocol})? a TLS listener closes a "
                "plaintext client; check the port of PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP")
    return (f"Kafka broker {broker} did not answer within {timeout_s:.0f}s ({name}); is it running "
            "(`peregrine stack status`), is PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP right, and does "
            f"PEREGRINE_KAFKA_SECURITY_PROTOCOL ({settings.kafka_security_protocol}) match its listener?")
