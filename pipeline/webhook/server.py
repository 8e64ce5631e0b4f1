"""The HTTP side of the receiver (aiohttp): ``POST <path>`` (default
``/k8s-audit``), ``GET /healthz`` (liveness), ``GET /readyz`` (Kafka reachable, topic
led) and ``GET /metrics``.

Answers, in the order they are checked: none, the connection reset as soon as it is
accepted, while ``max_connections`` are open (connection_cap.py); 400, and the connection
closed, for a request head aiohttp's parser refuses, and 415 for a Content-Encoding it has no
decoder for (br, zstd), both before anything else is checked (parse_errors.py); 401 without a
client certificate when ``--client-ca`` is set (mutual TLS: a certificate the CA did not sign
fails the handshake; the probes, which have none, still reach /healthz and
/readyz); 403 for a certificate none of whose names is a ``--client-name``;
401 without the bearer token; 415 for any Content-Encoding but gzip, deflate or identity,
before the body is read, and the connection closed; 413
for a body over the limit, and the connection closed (before the body is read, when
Content-Length says so); 503, with Retry-After, while ``max_concurrent`` posts are in flight;
408, and the connection closed, for a body not read within the read
timeout; 400, and the connection closed at once, for a body that cannot be read (not what its
Content-Encoding says, malformed chunks); 400 for a body that is not an audit EventList or
Event; 503 when Kafka does not ack (the API server retries); 200 once Kafka
has acked every event of the request. Every answer is JSON, a refusal's ``{"reason": ...}``;
none is a 500 but a bug's (the API server retries a 500 with the same batch for ever).

Connections closed after an answer sent before the body was read (413, 415) are half-closed
first (``_refuse_unread_body``): the client sees the answer and the end at once, and its
body's bytes are read and dropped until it has come or for aiohttp's 10 s, so that closing
does not reset the connection under an answer not read yet (a TLS connection cannot be
half-closed: its answer's Connection: close, then the same close).

Slow clients: aiohttp reads a request's head and body with no deadline of its own, so a
client sending a byte now and then held a connection, its descriptor and (while its body
came) one of the ``max_concurrent`` slots for ever. aiohttp's keep-alive timer, set to the
read timeout, closes a connection whose request head is not complete within it of the
connection's opening or of its previous answer (idle keep-alive connections alike); the
body is read under the same deadline; a connection the timer closes with a request head begun
is counted (stalled_heads.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
from functools import partial
from typing import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from pipeline import metrics
from pipeline.errors import ConfigError
from pipeline.webhook.answers import accepts_encoding, answer, description, unsupported_encoding
from pipeline.webhook.client_names import ClientIdentity, ClientNames
from pipeline.webhook.connection_cap import CappedListener, ConnectionCap
from pipeline.webhook.eventlist import BadAuditBody, parse_body, to_batch
from pipeline.webhook.open_files import default_max_connections, open_files_limit, raise_open_files_limit, reserved_files
from pipeline.webhook.parse_errors import ParseErrorsHandler
from pipeline.webhook.producer import AuditProducer, KafkaRefused
from pipeline.webhook.settings import WebhookSettings
from pipeline.webhook.token import BearerToken

log = logging.getLogger("peregrine.webhook")

SETTINGS = web.AppKey("settings", WebhookSettings)
PRODUCER = web.AppKey("producer", AuditProducer)
TOKEN = web.AppKey("token", BearerToken)
CLIENT_NAMES = web.AppKey("client_names", ClientNames)
READINESS = web.AppKey("readiness", object)
IN_FLIGHT = web.AppKey("in_flight", list)  # [posts being read, parsed or waiting on Kafka]
SHUTDOWN_TIMEOUT_S = 20.0


async def receive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.client_ca is not None:
        certificate = _peer_certificate(request)
        if not certificate:
            return answer(401, {"reason": "a client certificate signed by the webhook's --client-ca is required"})
        identity = ClientIdentity.of(certificate)
        if not request.app[CLIENT_NAMES].admits(identity):
            log.warning("refused a post from %s: a client certificate the CA signed, but for none of --client-name %s",
                        identity, ", ".join(sorted(settings.client_names)))
            return answer(403, {"reason": f"the client certificate ({identity}) names none of the webhook's --client-name"})
    if not request.app[TOKEN].accepts(request.headers.get("Authorization")):
        return answer(401, {"reason": "missing or wrong bearer token"}, {"WWW-Authenticate": 'Bearer realm="peregrine"'})
    content_encodings = request.headers.getall("Content-Encoding", [])
    if not accepts_encoding(content_encodings):
        return await _refuse_unread_body(request, unsupported_encoding(", ".join(content_encodings)))
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return await _refuse_unread_body(
            request, answer(413, {"reason": f"body of {request.content_length} bytes is over the limit of {limit}"}))
    app = request.app
    if app[IN_FLIGHT][0] >= settings.max_concurrent:
        return answer(503, {"reason": f"busy: {settings.max_concurrent} posts in flight (PEREGRINE_WEBHOOK_MAX_CONCURRENT)"},
                      {"Retry-After": "1"})
    app[IN_FLIGHT][0] += 1
    try:
        return await _receive(request, settings)
    finally:
        app[IN_FLIGHT][0] -= 1


async def _receive(request: web.Request, settings: WebhookSettings) -> web.Response:
    limit = settings.max_body_bytes
    try:
        async with asyncio.timeout(settings.read_timeout_s):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return await _refuse_unread_body(request, answer(413, {"reason": f"body is over the limit of {limit} bytes"}))
    except web.RequestPayloadError as error:
        # a body its Content-Encoding (gzip, deflate) cannot decode, or whose chunks cannot be parsed
        # (parse_errors.py): aiohttp raises it from read(); uncaught it was a 500, which the API
        # server retries with the same body for ever. The parser cannot go on past it: the
        # connection is closed at once, and the answer says so, or a client reuses it and fails
        return await _answer_and_close(request, 400, {"reason": f"body cannot be read: {_unreadable_because(error)}"})
    except TimeoutError:
        log.warning("answering 408 to %s: its body was not read within %gs (PEREGRINE_WEBHOOK_READ_TIMEOUT_S)",
                    request.remote, settings.read_timeout_s)
        return await _answer_and_close(request, 408, {"reason": f"the body did not arrive within {settings.read_timeout_s:g}s"})
    try:
        events = parse_body(body)
    except BadAuditBody as error:
        return answer(400, {"reason": str(error)})
    batch = to_batch(events, settings.max_event_bytes)
    for dropped in batch.dropped:
        log.warning("audit event %s of %d bytes dropped: over %d bytes even without its request and response objects",
                    dropped.audit_id, dropped.size, settings.max_event_bytes)
        metrics.WEBHOOK_OVERSIZED.labels("dropped").inc()
    trimmed = sum(1 for r in batch.records if r.trimmed)
    if trimmed:
        metrics.WEBHOOK_OVERSIZED.labels("trimmed").inc(trimmed)
    try:
        await request.app[PRODUCER].send(batch.records)
    except KafkaRefused as error:
        log.warning("answering 503: %s", error)
        return answer(503, {"reason": str(error)}, {"Retry-After": "1"})
    metrics.WEBHOOK_EVENTS.inc(len(batch.records))
    return answer(200, {"accepted": len(batch.records), "trimmed": trimmed, "dropped": len(batch.dropped)})


async def _answer_and_close(request: web.Request, status: int, body: dict) -> web.Response:
    """Send the answer, then close the connection at once: aiohttp would otherwise go on reading
    (and dropping) the rest of the body for up to 10 s, which a slow client sends slowly, and
    which a body the parser refused never ends."""
    response = answer(status, body)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


async def _refuse_unread_body(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` to a post whose body is not read, and end the connection: kept open,
    the rest of a body over the limit (or in a coding the webhook does not decode) would be read
    and dropped for aiohttp's 10 s, and a client that stopped sending it and went on with its
    next request would have that request taken for body bytes. Connection: close says so. The
    end is a half-close, as nginx's lingering close: FIN after the answer, the client's bytes
    still read and dropped until its body has come (or 10 s) and the socket is closed. Closing
    it at once, with the body's bytes unread, would send a reset, which can destroy the answer
    in the client's buffers before it reads it. A TLS connection cannot be half-closed; it gets
    Connection: close and the same close after the body."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    transport = request.transport
    if transport is not None and transport.can_write_eof():
        transport.write_eof()
    return response


def _unreadable_because(error: web.RequestPayloadError) -> str:
    cause = error.__cause__
    return description(cause) if isinstance(cause, HttpProcessingError) else " ".join(str(error).split())


def _peer_certificate(request: web.Request) -> dict | None:
    """The client certificate the TLS handshake verified (None: the client sent none)."""
    transport = request.transport
    return transport.get_extra_info("peercert") if transport is not None else None


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP (Kafka being away is no reason to restart it)."""
    return web.json_response({"status": "ok", "topic": request.app[SETTINGS].topic})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Kafka answers and the audit topic has a leader for each partition; 503 with
    the reason otherwise. One answer serves every probe for a second: each asked Kafka for
    metadata on the producer's one connection, and a hundred unauthenticated GETs made the real
    probes time out while Kafka was fine."""
    topic = request.app[SETTINGS].topic
    problem = await request.app[READINESS].problem()
    if problem is not None:
        return web.json_response({"status": "unready", "topic": topic, "reason": problem}, status=503)
    return web.json_response({"status": "ready", "topic": topic})


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


class Readiness:
    """The producer's readiness, asked at most once a second (concurrent probes share it)."""

    def __init__(self, producer: AuditProducer, ttl_s: float = 1.0) -> None:
        self._producer = producer
        self._ttl_s = ttl_s
        self._at = float("-inf")
        self._problem: str | None = None
        self._asking: asyncio.Task | None = None

    async def problem(self) -> str | None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._at < self._ttl_s:
            return self._problem
        if self._asking is None or self._asking.done():
            self._asking = loop.create_task(self._ask())
        return await asyncio.shield(self._asking)

    async def _ask(self) -> str | None:
        self._problem = await self._producer.ready()
        self._at = asyncio.get_running_loop().time()
        return self._problem


def build_app(settings: WebhookSettings, producer: AuditProducer, token: BearerToken) -> web.Application:
    # aiohttp refuses a larger body itself too (chunked requests with no Content-Length).
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[PRODUCER] = producer
    app[READINESS] = Readiness(producer)
    app[IN_FLIGHT] = [0]
    app[TOKEN] = token
    app[CLIENT_NAMES] = ClientNames.of(settings.client_names)
    app.router.add_post(settings.path, receive)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


def tls_context(settings: WebhookSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"cannot load --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: {error}") from None
    if settings.client_ca is not None:
        # optional in the handshake, so kubelet's probes (no certificate) reach /healthz and /readyz;
        # a certificate sent must be one the CA signed, and receive() requires one
        context.verify_mode = ssl.CERT_OPTIONAL
        try:
            context.load_verify_locations(cafile=str(settings.client_ca))
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(f"cannot load --client-ca {settings.client_ca}: {error}") from None
    return context


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Receiver:
    """The running receiver: Kafka producer started, then the port bound, at most
    ``max_connections`` connections open (the setting, else what the open-files limit in
    force at :meth:`start` leaves room for)."""

    def __init__(self, settings: WebhookSettings, producer: AuditProducer | None = None) -> None:
        self.settings = settings
        if producer is None:  # tests give one that needs no Kafka
            producer = AuditProducer(settings.broker, settings.topic, max_event_bytes=settings.max_event_bytes,
                                     timeout_s=settings.produce_timeout_s, startup_timeout_s=settings.startup_timeout_s,
                                     pipeline=settings.pipeline)
        self.producer = producer
        self.token = BearerToken(settings.token, settings.token_file)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.connections: ConnectionCap | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls else "http"
        host = self.settings.listen.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}{self.settings.path}"

    async def start(self) -> None:
        context = tls_context(self.settings)
        await self.producer.start()
        # shutdown_timeout: within Kubernetes' 30 s grace period, with room to close the producer
        # (aiohttp's 60 s default outlived it: a slow client's request kept the pod until SIGKILL)
        runner = web.AppRunner(build_app(self.settings, self.producer, self.token), access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        listen = self.settings.listen
        try:
            sock = socket.create_server((listen.host, listen.port), family=_family(listen.host), backlog=512)
        except OSError as error:
            await runner.cleanup()
            await self.producer.stop()
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ConfigError(f"cannot listen on {listen}: {reason}") from None
        self.connections = ConnectionCap(self.settings.max_connections or default_max_connections(open_files_limit()))
        loop = asyncio.get_running_loop()
        # the runner's server keeps the connections for a graceful shutdown; keepalive_timeout:
        # aiohttp's keep-alive timer runs from a connection's opening and from each answer until
        # the next request head is complete: the read deadline for heads, and for idle connections
        handlers = partial(ParseErrorsHandler, runner.server, loop=loop, access_log=None,
                           keepalive_timeout=self.settings.read_timeout_s)
        # ssl_handshake_timeout: a client that connects and never completes its TLS handshake held
        # its descriptor (and a slot of the cap) for asyncio's 60 s default; the read timeout is
        # the deadline for everything else it may send
        self._server = await loop.create_server(handlers, sock=CappedListener(sock, self.connections),
                                                ssl=context, backlog=512,
                                                ssl_handshake_timeout=self.settings.read_timeout_s if context else None)
        self._runner = runner
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; the runner closes the open ones
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.producer.stop()


async def serve(settings: WebhookSettings, say: Callable[[str], None]) -> None:
    """Run until SIGTERM or SIGINT."""
    open_files = raise_open_files_limit()
    receiver = Receiver(settings)
    await receiver.start()
    assert receiver.connections is not None
    max_connections = receiver.connections.limit
    room = default_max_connections(open_files)
    if max_connections > room:
        log.warning("a connection cap of %d (--max-connections or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) leaves fewer than "
                    "%d of the %d open files the process may hold for Kafka and the rest: past %d connections, accepting "
                    "and producing may fail for want of descriptors; lower it or raise the hard limit (ulimit -Hn)",
                    max_connections, reserved_files(open_files), open_files, room)
    names = f" for {', '.join(settings.client_names)}" if settings.client_names else ""
    if receiver.token.required:
        auth = "bearer token required" + (f", and a client certificate{names}" if settings.client_ca is not None else "")
    elif settings.client_ca is not None:
        auth = f"a client certificate{names} signed by {settings.client_ca} required, no token"
    else:
        auth = "NO token: anyone who reaches the port can post"
    if settings.client_ca is not None and not settings.client_names:
        log.warning("--client-ca without --client-name: any client certificate %s signed may post; "
                    "give --client-name the CN of the API server's", settings.client_ca)
    say(f"peregrine webhook listening on {receiver.url} ({auth}); events to {settings.topic} on {settings.broker}; "
        f"at most {max_connections} connections open (of {open_files} open files)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await receiver.stop()
