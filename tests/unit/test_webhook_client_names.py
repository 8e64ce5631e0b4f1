"""--client-name: with --client-ca, only a client certificate whose subject CN or a DNS
subjectAltName is on the list may post; any other the CA signed (a cluster CA signs one for
every node and component) gets 403, logged with its names. Real certificates (the openssl
command), real TLS connections to the receiver on a loopback port."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from webhook_serving import EVENTLIST, loopback_settings, serving

from pipeline.errors import ConfigError
from pipeline.webhook.client_names import ClientIdentity, ClientNames
from pipeline.webhook.settings import WebhookSettings

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # quicker to make than RSA


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _signed(directory: Path, name: str, subject: str, extensions: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, request, ext = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr",
                               directory / f"{name}.ext")
    ext.write_text(extensions)
    _openssl("req", *EC_KEY, "-subj", subject, "-keyout", str(key), "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("pki")
    ca = directory / "ca.crt", directory / "ca.key"
    _openssl("req", "-x509", *EC_KEY, "-days", "1", "-subj", "/CN=cluster-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", "-keyout", str(ca[1]), "-out", str(ca[0]))
    client = "extendedKeyUsage=clientAuth\n"
    return {
        "ca": ca,
        "server": _signed(directory, "server", "/CN=webhook", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", ca),
        "apiserver": _signed(directory, "apiserver", "/O=system:masters/CN=kube-apiserver-audit", client, ca),
        "by_dns_name": _signed(directory, "by-dns", "/CN=something-else",
                               client + "subjectAltName=DNS:other.example,DNS:Audit.Peregrine.Example\n", ca),
        "kubelet": _signed(directory, "kubelet", "/O=system:nodes/CN=system:node:worker-1",
                           client + "subjectAltName=DNS:worker-1\n", ca),
    }


def _mtls_settings(pki, names: tuple[str, ...] = ()) -> WebhookSettings:
    cert, key = pki["server"]
    return loopback_settings(tls_cert=cert, tls_key=key, client_ca=pki["ca"][0], client_names=names)


async def _post(url: str, pki, client: str | None, path: str | None = None) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(pki["ca"][0]))
    if client is not None:
        context.load_cert_chain(*(str(p) for p in pki[client]))
    async with aiohttp.ClientSession() as session:
        if path is not None:
            async with session.get(url.rsplit("/", 1)[0] + path, ssl=context) as response:
                return response.status, await response.json()
        async with session.post(url, data=EVENTLIST, ssl=context) as response:
            return response.status, await response.json()


async def test_only_the_listed_names_may_post(pki, caplog):
    caplog.set_level(logging.WARNING, logger="peregrine.webhook")
    settings = _mtls_settings(pki, ("kube-apiserver-audit", "audit.peregrine.example"))
    async with serving(settings) as receiver:
        assert await _post(receiver.url, pki, "apiserver") == (200, {"accepted": 2, "trimmed": 0, "dropped": 0})
        assert (await _post(receiver.url, pki, "by_dns_name"))[0] == 200  # a DNS name, in another case
        status, answer = await _post(receiver.url, pki, "kubelet")
        assert status == 403
        assert answer["reason"] == ("the client certificate (CN=system:node:worker-1, DNS:worker-1) "
                                    "names none of the webhook's --client-name")
        assert (await _post(receiver.url, pki, None))[0] == 401  # no certificate at all
        assert (await _post(receiver.url, pki, None, "/healthz"))[0] == 200  # the probes have none
        assert len(receiver.producer.sent) == 4
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == ["refused a post from CN=system:node:worker-1, DNS:worker-1: a client certificate the CA signed, "
                        "but for none of --client-name audit.peregrine.example, kube-apiserver-audit"]


async def test_without_names_any_certificate_the_ca_signed_may_post(pki):
    async with serving(_mtls_settings(pki)) as receiver:
        assert (await _post(receiver.url, pki, "kubelet"))[0] == 200
        assert (await _post(receiver.url, pki, None))[0] == 401


def test_names_of_a_certificate_and_the_match():
    peercert = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver"),)),
                "subjectAltName": (("DNS", "Api.Example"), ("IP Address", "10.0.0.1"), ("DNS", "*.example"))}
    identity = ClientIdentity.of(peercert)
    assert identity == ClientIdentity(("kube-apiserver",), ("Api.Example", "*.example"))
    assert ClientNames.of(["kube-apiserver"]).admits(identity)
    assert ClientNames.of(["api.example"]).admits(identity)
    assert ClientNames.of(["*.example"]).admits(identity)
    assert not ClientNames.of(["Kube-APIServer"]).admits(identity)  # a common name is matched exactly
    assert not ClientNames.of(["x.example"]).admits(identity)  # a wildcard in a certificate is not expanded
    assert not ClientNames.of(["10.0.0.1", "system:masters"]).admits(identity)  # IP SANs and other fields are no names
    assert ClientNames.of([]).admits(ClientIdentity((), ()))
    assert str(ClientIdentity((), ())) == "no CN and no DNS name"


def test_client_name_settings(tmp_path):
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    for path in (cert, key, ca):
        path.write_text("x")
    env = {"PEREGRINE_WEBHOOK_CLIENT_NAMES": " kube-apiserver , audit.example,", "PEREGRINE_WEBHOOK_CLIENT_CA": str(ca)}
    assert WebhookSettings.from_env(env, tls_cert=cert, tls_key=key).client_names == ("kube-apiserver", "audit.example")
    flagged = WebhookSettings.from_env(env, tls_cert=cert, tls_key=key, client_names=["CN, with a comma"])
    assert flagged.client_names == ("CN, with a comma",)  # the flags win, one name each
    with pytest.raises(ConfigError, match="--client-name needs --client-ca"):
        WebhookSettings.from_env({"PEREGRINE_WEBHOOK_CLIENT_NAMES": "kube-apiserver"})
    with pytest.raises(ConfigError, match="an empty name"):
        WebhookSettings.from_env(env, tls_cert=cert, tls_key=key, client_names=[" "])


def test_read_timeout_settings():
    assert WebhookSettings.from_env({}).read_timeout_s == 30.0
    assert WebhookSettings.from_env({"PEREGRINE_WEBHOOK_READ_TIMEOUT_S": "12.5"}).read_timeout_s == 12.5
    assert WebhookSettings.from_env({"PEREGRINE_WEBHOOK_READ_TIMEOUT_S": "12.5"}, read_timeout_s=3).read_timeout_s == 3
    for value in ("0", "nan", "-1"):
        with pytest.raises(ConfigError, match="PEREGRINE_WEBHOOK_READ_TIMEOUT_S must be a positive number of seconds"):
            WebhookSettings.from_env({"PEREGRINE_WEBHOOK_READ_TIMEOUT_S": value})
    with pytest.raises(ConfigError, match="--read-timeout must be a positive number of seconds"):
        WebhookSettings.from_env({}, read_timeout_s=0.0)
