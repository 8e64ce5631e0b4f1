"""The local Kafka's SSL listener: its properties, and the keystore `peregrine stack up`
makes once with keytool (tests/integration/test_kafka_tls.py connects to it for real)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_stack_kafka_sasl import Recorder, properties

from pipeline.errors import ConfigError, StackError
from pipeline.stack import kafka
from pipeline.stack.settings import StackSettings
from pipeline.stack.toolchain import JavaHome

JAVA = JavaHome(Path("/usr/lib/jvm/x"), 17)


@pytest.fixture
def settings(tmp_path, monkeypatch) -> StackSettings:
    monkeypatch.setenv("PEREGRINE_HOME", str(tmp_path / "home"))
    return StackSettings.from_env()


def test_the_ssl_listener_is_advertised_with_the_local_keystore_and_no_client_certificate(settings):
    props = properties(settings)
    assert f"SSL://127.0.0.1:{settings.kafka_ssl_port}" in props["listeners"].split(",")
    assert f"SSL://127.0.0.1:{settings.kafka_ssl_port}" in props["advertised.listeners"].split(",")
    assert "SSL:SSL" in props["listener.security.protocol.map"].split(",")
    assert props["listener.name.ssl.ssl.keystore.location"] == str(settings.home / "kafka-tls" / "broker.p12")
    assert props["listener.name.ssl.ssl.keystore.type"] == "PKCS12"
    assert props["listener.name.ssl.ssl.client.auth"] == "none"
    assert settings.kafka_ssl_bootstrap == "127.0.0.1:9095" and settings.kafka_ca_file == settings.home / "kafka-tls" / "ca.pem"


def test_the_sasl_ssl_listener_has_the_keystore_and_the_sasl_users(settings):
    props = properties(settings)
    assert f"SASL_SSL://127.0.0.1:{settings.kafka_sasl_ssl_port}" in props["advertised.listeners"].split(",")
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"].split(",")
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == props["listener.name.ssl.ssl.keystore.location"]
    assert props["listener.name.sasl_ssl.plain.sasl.jaas.config"] == props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config" in props
    assert settings.kafka_sasl_ssl_bootstrap == "127.0.0.1:9096"


def test_the_ssl_port_may_not_clash():
    with pytest.raises(ConfigError, match="PEREGRINE_KAFKA_SSL_PORT"):
        StackSettings.from_env({"PEREGRINE_KAFKA_SSL_PORT": "9094"})


def test_the_ca_and_the_brokers_certificate_are_made_once_signed_for_the_loopback_address(settings, monkeypatch):
    run = Recorder()
    monkeypatch.setattr(kafka.subprocess, "run", run)
    said: list[str] = []
    keystore = kafka.ensure_tls(settings, JAVA, said.append)
    assert keystore == settings.home / "kafka-tls" / "broker.p12" and said and len(run.calls) == 7
    assert all(call[0] == "/usr/lib/jvm/x/bin/keytool" for call in run.calls)
    gencert = next(call for call in run.calls if call[1] == "-gencert")
    assert "SAN=IP:127.0.0.1,DNS:localhost" in gencert  # aiokafka's client checks the host name
    # what the (faked) keytool would have left: nothing is made again
    (settings.home / "kafka-tls").mkdir(parents=True, exist_ok=True)
    keystore.write_bytes(b"p12")
    settings.kafka_ca_file.write_text("pem")
    kafka.ensure_tls(settings, JAVA, said.append)
    assert len(run.calls) == 7


def test_a_failed_keytool_step_is_a_stack_error_and_leaves_no_half_made_keystore(settings, monkeypatch):
    monkeypatch.setattr(kafka.subprocess, "run", Recorder(1, "keytool error: java.lang.Exception: bad"))
    with pytest.raises(StackError, match="keytool -genkeypair failed .*: keytool error: java.lang.Exception: bad"):
        kafka.ensure_tls(settings, JAVA, lambda _: None)
    assert not (settings.home / "kafka-tls").exists()


def test_keytool_really_makes_a_keystore_python_trusts(settings):
    """With the machine's JDK: the CA certificate loads into an SSL context."""
    import ssl

    from pipeline.stack.toolchain import find_java

    java = find_java()
    kafka.ensure_tls(settings, java, lambda _: None)
    context = ssl.create_default_context(cafile=str(settings.kafka_ca_file))
    assert context.cert_store_stats()["x509_ca"] == 1
    assert (settings.home / "kafka-tls" / "broker.p12").stat().st_size > 1000
    assert not (settings.home / "kafka-tls.partial").exists()
