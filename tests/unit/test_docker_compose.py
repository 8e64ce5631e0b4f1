"""docker-compose.yml runs the same versions on the same ports as `peregrine stack up`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.stack import settings as s
from pipeline.stack.kafka import SCRAM_MECHANISMS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _ports(service: dict) -> list[str]:
    return [str(p) for p in service.get("ports", [])]


def test_versions_match_the_settings(services):
    assert services["kafka"]["image"] == f"apache/kafka:{s.KAFKA_VERSION}"
    assert services["opensearch"]["image"] == f"opensearchproject/opensearch:{s.OPENSEARCH_VERSION}"
    assert services["opensearch-dashboards"]["image"] == f"opensearchproject/opensearch-dashboards:{s.OPENSEARCH_VERSION}"


def test_ports_match_the_settings_and_stay_on_loopback(services):
    assert _ports(services["kafka"]) == [f"{s.HOST}:{s.KAFKA_PORT}:{s.KAFKA_PORT}", f"{s.HOST}:{s.KAFKA_SASL_PORT}:{s.KAFKA_SASL_PORT}"]
    assert _ports(services["opensearch"]) == [f"{s.HOST}:{s.OPENSEARCH_PORT}:{s.OPENSEARCH_PORT}"]
    assert _ports(services["opensearch-dashboards"]) == [f"{s.HOST}:{s.DASHBOARDS_PORT}:{s.DASHBOARDS_PORT}"]


def test_kafka_is_a_single_kraft_node_like_the_local_one(services):
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert f"PLAINTEXT://{s.HOST}:{s.KAFKA_PORT}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith(f":{s.KAFKA_CONTROLLER_PORT}")
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_kafka_has_the_local_sasl_listener_and_user(services):
    env = services["kafka"]["environment"]
    assert f"SASL_PLAINTEXT://{s.HOST}:{s.KAFKA_SASL_PORT}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == ",".join(("PLAIN",) + SCRAM_MECHANISMS) == "PLAIN,SCRAM-SHA-256"
    jaas = env["KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG"]
    assert f'user_{s.KAFKA_SASL_USER}="{s.KAFKA_SASL_PASSWORD}"' in jaas
    # the image maps "___" to "-" and "__" to "_": listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config
    assert "ScramLoginModule required;" in env["KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___256_SASL_JAAS_CONFIG"]
    scram_user = services["kafka-scram-user"]["command"]
    assert scram_user[scram_user.index("--add-config") + 1] == f"SCRAM-SHA-256=[password={s.KAFKA_SASL_PASSWORD}]"
    assert scram_user[scram_user.index("--entity-name") + 1] == s.KAFKA_SASL_USER


def test_opensearch_is_single_node_without_security(services):
    env = services["opensearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert env["DISABLE_SECURITY_PLUGIN"] == "true"


def test_worker_is_built_from_the_worker_dockerfile_and_runs_the_worker(services):
    build = services["peregrine-worker"]["build"]
    dockerfile = ROOT / build["dockerfile"]
    assert dockerfile.is_file()
    text = dockerfile.read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert 'CMD ["peregrine", "worker"]' in text
    env = services["peregrine-worker"]["environment"]
    assert env["PEREGRINE_KAFKA_BOOTSTRAP"].endswith(":29092")
    assert services["peregrine-init"]["command"] == ["peregrine", "stack", "provision"]
