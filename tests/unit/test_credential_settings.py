"""Kafka and OpenSearch credentials from PEREGRINE_* variables (pipeline/stream/settings.py),
and the options each client gets from them (pipeline/stream/credentials.py)."""

from __future__ import annotations

import faust
import pytest

from pipeline.errors import ConfigError
from pipeline.stream.credentials import aiokafka_options, faust_credentials, opensearch_options
from pipeline.stream.settings import PipelineSettings

SASL = {
    "PEREGRINE_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
    "PEREGRINE_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "PEREGRINE_KAFKA_SASL_USERNAME": "alice",
    "PEREGRINE_KAFKA_SASL_PASSWORD": "s3cret",
}


def test_defaults_are_plaintext_without_credentials():
    settings = PipelineSettings.from_env({})
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None
    assert opensearch_options(settings) == {}


def test_sasl_settings_parse_and_reach_aiokafka_and_faust():
    settings = PipelineSettings.from_env(SASL)
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert aiokafka_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice", "sasl_plain_password": "s3cret",
    }
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == ("alice", "s3cret", "SCRAM-SHA-512")
    assert credentials.protocol.value == "SASL_PLAINTEXT"


def test_sasl_ssl_has_a_tls_context_and_faust_says_sasl_ssl():
    settings = PipelineSettings.from_env({**SASL, "PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    options = aiokafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_context"] is not None
    assert faust_credentials(settings).protocol.value == "SASL_SSL"


def test_ssl_alone_gives_faust_ssl_credentials():
    settings = PipelineSettings.from_env({"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert isinstance(faust_credentials(settings), faust.SSLCredentials)
    assert "sasl_mechanism" not in aiokafka_options(settings)


def test_password_from_a_file_first_line(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file\nignored\n")
    env = {**SASL, "PEREGRINE_KAFKA_SASL_PASSWORD": "", "PEREGRINE_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    assert aiokafka_options(PipelineSettings.from_env(env))["sasl_plain_password"] == "from-file"


@pytest.mark.parametrize(("env", "words"), [
    ({"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "KERBEROS"}, "PEREGRINE_KAFKA_SECURITY_PROTOCOL must be one of"),
    ({**SASL, "PEREGRINE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "PEREGRINE_KAFKA_SASL_MECHANISM must be one of"),
    ({**SASL, "PEREGRINE_KAFKA_SASL_USERNAME": ""}, "needs PEREGRINE_KAFKA_SASL_USERNAME"),
    ({**SASL, "PEREGRINE_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "not both"),
    ({**SASL, "PEREGRINE_KAFKA_SASL_PASSWORD": "", "PEREGRINE_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "no such file"),
    ({"PEREGRINE_KAFKA_CA_FILE": "/nonexistent/ca.pem"}, "PEREGRINE_KAFKA_CA_FILE=/nonexistent/ca.pem: no such file"),
    ({"PEREGRINE_OPENSEARCH_PASSWORD": "pw"}, "without PEREGRINE_OPENSEARCH_USERNAME"),
])
def test_bad_credential_settings_are_clear_errors(env, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        PipelineSettings.from_env(env)


def test_opensearch_basic_auth_and_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = PipelineSettings.from_env({"PEREGRINE_OPENSEARCH_USERNAME": "admin", "PEREGRINE_OPENSEARCH_PASSWORD": "pw",
                                          "PEREGRINE_OPENSEARCH_CA_FILE": str(ca)})
    assert opensearch_options(settings) == {"http_auth": ("admin", "pw"), "ca_certs": str(ca), "verify_certs": True}


async def test_the_alert_sink_sends_basic_auth():
    from pipeline.sinks.opensearch import AlertSink

    settings = PipelineSettings.from_env({"PEREGRINE_OPENSEARCH_USERNAME": "admin", "PEREGRINE_OPENSEARCH_PASSWORD": "pw"})
    sink = AlertSink("http://127.0.0.1:9", "p-", auth=opensearch_options(settings))
    async with sink.client:  # the async transport makes its connections here
        connection = sink.client.transport.get_connection()
        assert connection.headers.get("authorization") == "Basic YWRtaW46cHc="  # admin:pw
