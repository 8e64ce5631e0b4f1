"""Stack settings: defaults, PEREGRINE_* overrides, and bad values as ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.stack import settings as stack_settings
from pipeline.stack.settings import StackSettings


def test_defaults_are_loopback_and_the_documented_ports():
    s = StackSettings.from_env({})
    assert (s.host, s.kafka_port, s.kafka_controller_port, s.opensearch_port) == ("127.0.0.1", 9092, 9093, 9200)
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.opensearch_url == "http://127.0.0.1:9200"
    assert s.kafka_version.startswith("4.") and s.opensearch_version.startswith("2.")
    assert s.home == stack_settings.REPO_ROOT / ".peregrine"


def test_topics_carry_configured_partitions():
    s = StackSettings.from_env({"PEREGRINE_INPUT_PARTITIONS": "8", "PEREGRINE_ALERT_PARTITIONS": "2"})
    by_name = {t.name: t.partitions for t in s.topics}
    assert by_name == {
        "peregrine.events.syscall": 8,
        "peregrine.events.k8s_audit": 8,
        "peregrine.events.cloudtrail": 8,
        "peregrine.alerts": 2,
        "peregrine.deadletter": 1,
    }


def test_env_overrides_ports_home_versions_and_endpoints(tmp_path: Path):
    s = StackSettings.from_env({
        "PEREGRINE_HOME": str(tmp_path),
        "PEREGRINE_KAFKA_PORT": "19092",
        "PEREGRINE_OPENSEARCH_PORT": "19200",
        "PEREGRINE_KAFKA_VERSION": "4.1.1",
        "PEREGRINE_STACK_TIMEOUT": "30",
        "PEREGRINE_OPENSEARCH_URL": "http://opensearch:9200",
    })
    assert s.home == tmp_path.resolve()
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.opensearch_url == "http://opensearch:9200"
    assert s.kafka_version == "4.1.1"
    assert s.start_timeout_s == 30.0
    assert s.kafka_dir == tmp_path.resolve() / "kafka"
    assert s.run_dir == tmp_path.resolve() / "run"


def test_empty_variables_mean_default():
    assert StackSettings.from_env({"PEREGRINE_KAFKA_PORT": ""}).kafka_port == 9092


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PEREGRINE_KAFKA_PORT", "ninety", "not a whole number"),
        ("PEREGRINE_OPENSEARCH_PORT", "70000", "out of range"),
        ("PEREGRINE_KAFKA_HEAP", "lots", "heap size"),
        ("PEREGRINE_OPENSEARCH_VERSION", "latest", "version like"),
        ("PEREGRINE_STACK_TIMEOUT", "-1", "must be a positive number of seconds"),
        ("PEREGRINE_STACK_TIMEOUT", "nan", "must be a positive number of seconds"),  # `stack up` waited forever
        ("PEREGRINE_STACK_TIMEOUT", "inf", "must be a positive number of seconds"),
    ],
)
def test_bad_values_are_config_errors_naming_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        StackSettings.from_env({name: value})
    assert name in str(error.value)


def test_clashing_ports_are_refused():
    with pytest.raises(ConfigError, match="must differ"):
        StackSettings.from_env({"PEREGRINE_OPENSEARCH_PORT": "9092"})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        StackSettings().kafka_port = 1  # type: ignore[misc]
