"""`peregrine webhook`: the audit webhook receiver kube-apiserver posts to.

Point ``--audit-webhook-config-file`` at a kubeconfig whose server is
``https://<host>:<port>/k8s-audit`` (deploy/k8s/audit/webhook-kubeconfig.yaml).
Each event goes to the K8s audit topic keyed by namespace. A broker that does
not answer, a missing topic or a port in use exits 2 with one line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import List, Optional

import typer


def webhook(
    listen: Optional[str] = typer.Option(None, "--listen", help="HOST:PORT or :PORT (default PEREGRINE_WEBHOOK_LISTEN or :9765)"),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bearer token the API server sends (else PEREGRINE_WEBHOOK_TOKEN; none: no auth)"),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate (chain): serve HTTPS"),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
    client_ca: Optional[Path] = typer.Option(None, "--client-ca", help="PEM CA bundle: POSTs need a client certificate it signed (mutual TLS; with --tls-cert)"),
    client_name: Optional[List[str]] = typer.Option(
        None, "--client-name",
        help="With --client-ca: only a certificate with this subject CN or DNS name may post (repeat for more; "
             "else PEREGRINE_WEBHOOK_CLIENT_NAMES, separated by commas; none: any the CA signed)"),
    read_timeout: Optional[float] = typer.Option(
        None, "--read-timeout",
        help="Seconds for a request's head (from the connection's opening or last answer), then for its body; "
             "else the connection is closed, with 408 for a body (default PEREGRINE_WEBHOOK_READ_TIMEOUT_S or 30)"),
    max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", min=1, help="Larger bodies get 413 (default 32 MiB)"),
    max_connections: Optional[int] = typer.Option(
        None, "--max-connections",
        help="Connections open at once; one more is reset as soon as it is accepted, which the API server retries "
             "(default PEREGRINE_WEBHOOK_MAX_CONNECTIONS, else the open-files limit less max(64, a tenth of it))"),
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="debug, info, warning, error"),
) -> None:
    """Receive kube-apiserver audit events (EventList posts) and produce them to Kafka."""
    from pipeline.errors import ConfigError
    from pipeline.webhook.server import serve
    from pipeline.webhook.settings import WebhookSettings

    level = getattr(logging, loglevel.upper(), None)
    if not isinstance(level, int):
        raise ConfigError(f"--loglevel must be one of debug, info, warning, error; got {loglevel!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))
    settings = WebhookSettings.from_env(listen=listen, token_file=token_file, tls_cert=tls_cert, tls_key=tls_key,
                                        client_ca=client_ca, client_names=client_name, read_timeout_s=read_timeout,
                                        max_body_bytes=max_body_bytes, max_connections=max_connections)
    try:
        asyncio.run(serve(settings, lambda message: print(message, flush=True)))
    except KeyboardInterrupt:
        pass


def register(root: typer.Typer) -> None:
    root.command("webhook")(webhook)
