"""The worker's settings: any environment either gives a ConfigError that names the setting (an
AuditError for an unreadable Polaris config), or a worker whose batch processor runs. Before these checks, ``PEREGRINE_EXITED_TTL_S=inf`` stopped
the worker with an OverflowError, and two inputs set to one topic made every event of one of
them a schema dead letter."""

from __future__ import annotations

import os
from dataclasses import fields

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import AuditError, ConfigError, RuleError
from pipeline.stream.batch import DictStateStore, Message
from pipeline.stream.delivery import build_processor
from pipeline.stream.settings import PipelineSettings

from tests.conftest import ROOT

NAMES = sorted(f"PEREGRINE_{f.name.upper()}" for f in fields(PipelineSettings))
ODD = ["0", "-1", "1", "inf", "-inf", "nan", "1e400", "1e300", "99999999999999999999", "abc", "0.0000001", "1.5", "true", "off",
       "/nonexistent", "ALL", "é", "a b", "Upper", "_x", "..", "peregrine.alerts", "peregrine.events.syscall"]
LIMITS = st.lists(st.tuples(st.sampled_from(["max_window", "throttle", "max_groups", "allowed_lateness", "max_count", "x"]),
                            st.sampled_from(ODD + ["1h", "10m", "0s", "-1s", "999999999999h", "1ms"])), max_size=3).map(
    lambda items: ",".join(f"{k}={v}" for k, v in items))
RULES = os.pathsep.join(str(ROOT / "rules" / name) for name in ("peregrine_syscall_rules.yaml", "peregrine_correlations.yaml"))
EVENT = orjson.dumps({"evt.type": "execve", "evt.time": 1_700_000_000_000_000_000, "proc.pid": 5, "proc.ppid": 1,
                      "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": "c1"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(ODD), max_size=3), limits=LIMITS)
def test_any_environment_is_refused_by_name_or_runs(env, limits):
    env = {**env, "PEREGRINE_CORRELATION_LIMITS": limits, "PEREGRINE_RULES": RULES}
    try:
        configured = PipelineSettings.from_env(env)
        processor = build_processor(configured)
    except ConfigError as error:
        assert "PEREGRINE_" in str(error)
        return
    except AuditError as error:  # PEREGRINE_AUDIT_CONFIG names no readable Polaris config
        assert "config" in str(error)
        return
    except RuleError as error:  # correlation limits below what the rules need: file:line:col and the limit
        assert "peregrine_correlations.yaml:" in str(error) and "limit" in str(error)
        return
    result = processor.process([Message(configured.syscall_topic, 0, n, b"c1", EVENT) for n in (1, 2)], DictStateStore())
    if configured.max_message_bytes < len(EVENT):
        assert [d.reason for d in result.dead_letters] == ["oversized", "oversized"]
    else:
        assert result.dead_letters == [] and result.events == 2


@pytest.mark.parametrize("env,says", [
    ({"PEREGRINE_EXITED_TTL_S": "inf"}, "PEREGRINE_EXITED_TTL_S must be a positive number of seconds up to 315,360,000"),
    ({"PEREGRINE_IDLE_CONTAINER_TTL_S": "1e300"}, "PEREGRINE_IDLE_CONTAINER_TTL_S must be a positive"),
    ({"PEREGRINE_BATCH_WITHIN_S": "nan"}, "PEREGRINE_BATCH_WITHIN_S must be a positive"),
    ({"PEREGRINE_STARTUP_TIMEOUT_S": "0"}, "PEREGRINE_STARTUP_TIMEOUT_S must be a positive"),
    ({"PEREGRINE_SYSCALL_TOPIC": "events", "PEREGRINE_K8S_AUDIT_TOPIC": "events"},
     "PEREGRINE_SYSCALL_TOPIC and PEREGRINE_K8S_AUDIT_TOPIC both name topic 'events'"),
    ({"PEREGRINE_DEADLETTER_TOPIC": "peregrine.alerts"}, "PEREGRINE_ALERTS_TOPIC and PEREGRINE_DEADLETTER_TOPIC both name"),
    ({"PEREGRINE_DEADLETTER_TOPIC": "peregrine.alerts.critical", "PEREGRINE_ROUTE_BY_PRIORITY": "on"},
     "PEREGRINE_DEADLETTER_TOPIC='peregrine.alerts.critical' is a topic the worker writes itself"),
    ({"PEREGRINE_ALERTS_TOPIC": "alerts for the SOC"}, "PEREGRINE_ALERTS_TOPIC='alerts for the SOC' is not a Kafka topic name"),
    ({"PEREGRINE_APP_ID": "../elsewhere"}, "PEREGRINE_APP_ID='../elsewhere': use letters"),
    ({"PEREGRINE_APP_ID": "w" * 240}, "would be longer than Kafka's 249 characters"),
    ({"PEREGRINE_INDEX_PREFIX": "Peregrine-"}, "PEREGRINE_INDEX_PREFIX='Peregrine-' cannot start an OpenSearch index name"),
    ({"PEREGRINE_INDEX_PREFIX": "_alerts-"}, "PEREGRINE_INDEX_PREFIX='_alerts-' cannot start"),
])
def test_a_misconfiguration_names_the_setting(env, says):
    with pytest.raises(ConfigError) as raised:
        PipelineSettings.from_env(env)
    assert says in str(raised.value)


def test_the_defaults_and_a_full_custom_naming_are_taken():
    PipelineSettings.from_env({})
    custom = PipelineSettings.from_env({"PEREGRINE_APP_ID": "soc-eu_1", "PEREGRINE_SYSCALL_TOPIC": "eu.syscall",
                                        "PEREGRINE_K8S_AUDIT_TOPIC": "eu.audit", "PEREGRINE_CLOUDTRAIL_TOPIC": "eu.cloudtrail",
                                        "PEREGRINE_ALERTS_TOPIC": "eu.alerts", "PEREGRINE_DEADLETTER_TOPIC": "eu.dead",
                                        "PEREGRINE_OCSF_TOPIC": "eu.ocsf", "PEREGRINE_ROUTE_BY_PRIORITY": "on",
                                        "PEREGRINE_INDEX_PREFIX": "soc-eu-alerts-"})
    assert custom.repartition_topic == "eu.syscall.by-container.soc-eu_1"
