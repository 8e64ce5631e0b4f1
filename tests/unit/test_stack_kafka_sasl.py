"""The local Kafka's SASL listener: PLAIN and SCRAM-SHA-256 for the test user, SCRAM's
credentials added when the storage is formatted, or once through the broker for a data
dir formatted before (the integration test test_kafka_credentials.py logs in with both)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.stack import kafka
from pipeline.errors import StackError
from pipeline.stack.settings import KAFKA_SASL_PASSWORD, KAFKA_SASL_USER, StackSettings
from pipeline.stack.toolchain import JavaHome


@pytest.fixture
def settings(tmp_path, monkeypatch) -> StackSettings:
    monkeypatch.setenv("PEREGRINE_HOME", str(tmp_path / "home"))
    return StackSettings.from_env()


def properties(settings: StackSettings) -> dict[str, str]:
    lines = kafka._server_properties(settings).splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_sasl_listener_enables_plain_and_scram_sha_256_only(settings):
    props = properties(settings)
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256"
    assert f'user_{KAFKA_SASL_USER}="{KAFKA_SASL_PASSWORD}"' in props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"] == \
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert not any("scram-sha-512" in key for key in props)


class Recorder:
    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode, self.stderr = returncode, stderr

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, self.returncode, "", self.stderr)


def test_formatting_adds_the_scram_credentials_and_marks_the_data_dir(settings, monkeypatch, tmp_path):
    run = Recorder()
    monkeypatch.setattr(kafka.subprocess, "run", run)
    java = JavaHome(Path("/usr/lib/jvm/x"), 17)
    kafka.format_storage_if_needed(settings, java, tmp_path / "server.properties", tmp_path / "log4j2.properties", lambda _: None)
    [argv] = run.calls
    assert "kafka.tools.StorageTool" in argv
    assert argv[argv.index("--add-scram") + 1] == f"SCRAM-SHA-256=[name={KAFKA_SASL_USER},password={KAFKA_SASL_PASSWORD}]"
    assert (kafka.data_dir(settings) / kafka.SCRAM_MARKER).is_file()
    # the broker then starts: nothing left to add
    kafka.add_scram_users_if_needed(settings, java, tmp_path / "log4j2.properties", lambda _: None)
    assert len(run.calls) == 1


def test_a_data_dir_formatted_before_gets_the_credentials_once_through_the_broker(settings, monkeypatch, tmp_path):
    kafka.data_dir(settings).mkdir(parents=True)
    (kafka.data_dir(settings) / "meta.properties").write_text("cluster.id=x\n")
    run = Recorder()
    monkeypatch.setattr(kafka.subprocess, "run", run)
    java = JavaHome(Path("/usr/lib/jvm/x"), 17)
    said: list[str] = []
    kafka.add_scram_users_if_needed(settings, java, tmp_path / "log4j2.properties", said.append)
    kafka.add_scram_users_if_needed(settings, java, tmp_path / "log4j2.properties", said.append)
    [argv] = run.calls
    assert argv[argv.index("kafka.admin.ConfigCommand"):] == [
        "kafka.admin.ConfigCommand", "--bootstrap-server", settings.kafka_bootstrap, "--alter",
        "--add-config", f"SCRAM-SHA-256=[password={KAFKA_SASL_PASSWORD}]", "--entity-type", "users", "--entity-name", KAFKA_SASL_USER,
    ]
    assert said == [f"kafka: adding SCRAM credentials for user {KAFKA_SASL_USER}"]


def test_a_refused_scram_update_is_a_stack_error_and_is_tried_again_next_time(settings, monkeypatch, tmp_path):
    kafka.data_dir(settings).mkdir(parents=True)
    (kafka.data_dir(settings) / "meta.properties").write_text("cluster.id=x\n")
    monkeypatch.setattr(kafka.subprocess, "run", Recorder(1, "Error while executing config command: timed out"))
    java = JavaHome(Path("/usr/lib/jvm/x"), 17)
    with pytest.raises(StackError, match="adding SCRAM credentials for peregrine failed: Error while executing config command"):
        kafka.add_scram_users_if_needed(settings, java, tmp_path / "log4j2.properties", lambda _: None)
    assert not (kafka.data_dir(settings) / kafka.SCRAM_MARKER).exists()


def test_a_cluster_id_never_starts_with_a_dash_which_storage_tool_takes_for_an_option(monkeypatch):
    import uuid

    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    assert kafka.new_cluster_id() == "EBAQEBAQEBAQEBAQEBAQEA"  # the first draw, "-AAAAAAA...", was skipped
