"""A real `peregrine webhook` subprocess for the tests, and realistic audit EventLists."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from pipeline_harness import read_topic

ROOT = Path(__file__).resolve().parents[2]
PEREGRINE = str(Path(sys.executable).with_name("peregrine"))
DATA = ROOT / "tests" / "data"
EVENTLIST = DATA / "events" / "k8s_audit_eventlist.json"
SINGLE_EVENTS = sorted((DATA / "k8s_audit").glob("*.json"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=peregrine-webhook",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def certificate_authority(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of a throwaway CA, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def client_certificate(directory: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """(certificate, key) of a client (extendedKeyUsage clientAuth) signed by ``ca``, as the
    API server's audit webhook kubeconfig names them."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, request, extensions = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr",
                                      directory / f"{name}.ext")
    extensions.write_text("extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
                    "-days", "1", "-extfile", str(extensions), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def eventlist(items: list[dict], api_version: str = "audit.k8s.io/v1") -> bytes:
    """An EventList as the API server's webhook backend posts it: items carry no kind/apiVersion."""
    bare = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return orjson.dumps({"kind": "EventList", "apiVersion": api_version, "metadata": {}, "items": bare})


def fixture_events() -> list[dict]:
    """The EventList fixture's items, then the single-event fixtures (one cluster-scoped)."""
    items = orjson.loads(EVENTLIST.read_bytes())["items"]
    return items + [orjson.loads(p.read_bytes()) for p in SINGLE_EVENTS]


def numbered(events: list[dict], count: int, tag: str) -> list[dict]:
    """``count`` events cycling through ``events``, each with its own auditID (``tag-<n>``)."""
    out = []
    for n in range(count):
        event = copy.deepcopy(events[n % len(events)])
        event["auditID"] = f"{tag}-{n:04d}"
        out.append(event)
    return out


@dataclass
class WebhookProcess:
    bootstrap: str
    topic: str
    workdir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    tls: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/k8s-audit"

    def ssl_context(self, client: tuple[Path, Path] | None = None) -> ssl.SSLContext | bool:
        """Trusting the webhook's certificate; presenting ``client`` (certificate, key) if given."""
        if not self.tls:
            return False
        context = ssl.create_default_context(cafile=str(self.workdir / "tls.crt"))
        if client is not None:
            context.load_cert_chain(str(client[0]), str(client[1]))
        return context

    def command(self) -> list[str]:
        args = [PEREGRINE, "webhook", "--listen", f"127.0.0.1:{self.port}", *self.args]
        if self.token is not None:
            token_file = self.workdir / "token"
            token_file.write_text(self.token + "\n")
            args += ["--token-file", str(token_file)]
        if self.tls:
            cert, key = self_signed(self.workdir)
            args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        return args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"PEREGRINE_KAFKA_BOOTSTRAP": self.bootstrap, "PEREGRINE_K8S_AUDIT_TOPIC": self.topic})
        env.pop("PEREGRINE_WEBHOOK_TOKEN", None)
        env.update(self.env)
        return env

    async def start(self, timeout: float = 90.0) -> "WebhookProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "webhook.log").open("ab")
        self.proc = subprocess.Popen(self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=str(ROOT), start_new_session=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"peregrine webhook exited {self.proc.returncode}:\n{self.log_text()}")
                try:
                    async with session.get(self.base + "/healthz", ssl=self.ssl_context()) as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"peregrine webhook not healthy within {timeout}s:\n{self.log_text()}")

    async def post(self, body: bytes, token: str | None = None, client: tuple[Path, Path] | None = None,
                   **headers: str) -> tuple[int, dict]:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.setdefault("Content-Type", "application/json")
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url, data=body, headers=headers, ssl=self.ssl_context(client)) as response:
                return response.status, await response.json(content_type=None)

    async def get(self, path: str) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.base + path, ssl=self.ssl_context()) as response:
                return response.status, await response.json(content_type=None)

    def log_text(self) -> str:
        path = self.workdir / "webhook.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def read_records(bootstrap: str, topic: str, expect: int, timeout: float = 60.0, settle: float = 1.5) -> list:
    """Every record of the topic from the start: the harness's ``read_topic``, settling
    a little longer (the receiver acks before the test reads, extras come late)."""
    return await read_topic(bootstrap, topic, expect, timeout=timeout, settle=settle)
