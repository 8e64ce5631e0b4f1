"""TLS to Kafka for real: the local Kafka's SSL listener (pipeline/stack/kafka.py, a
certificate from the local CA that `peregrine stack up` makes) with `peregrine worker`
and `replay`, and its SASL_SSL listener (the SASL test user over the same TLS). Trusting
that CA (PEREGRINE_KAFKA_CA_FILE) carries an event to an alert
in OpenSearch; trusting only the system's CAs exits 2 with one line naming the TLS
failure, never a hang."""

from __future__ import annotations

import uuid

import orjson
import pytest
from test_kafka_credentials import lines, run, shell

from pipeline.stack import settings as stack_settings
from pipeline_harness import WorkerSetup, read_topic, search_all


@pytest.fixture(scope="module")
def tls(stack) -> dict[str, str]:
    local = stack_settings.StackSettings.from_env()
    return {"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SSL", "PEREGRINE_KAFKA_CA_FILE": str(local.kafka_ca_file),
            "bootstrap": local.kafka_ssl_bootstrap}


async def event_to_alert(stack, bootstrap: str, env: dict[str, str], topic_factory, opensearch, tmp_path, label: str) -> None:
    """A worker and a replay with ``env``'s Kafka settings on ``bootstrap``: one shell event, one
    alert on the alert topic (read back on the plaintext listener: the same broker, so the same
    records) and in OpenSearch."""
    topics = {name: await topic_factory(1, prefix=f"pg-{label}-{name}") for name in ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter")}
    prefix = f"peregrine-alerts-test-{label}-{uuid.uuid4().hex[:8]}-"
    setup = WorkerSetup(bootstrap, stack.opensearch_url, topics, prefix, tmp_path / "worker", extra={**env, "PEREGRINE_CONFIG_AUDIT": "false"})
    try:
        setup.start()
        events = tmp_path / "events.jsonl"
        events.write_bytes(orjson.dumps(shell(f"c{label}1", 4343, 1_700_000_000_000_000_000)) + b"\n")
        code, out = run({**env, "PEREGRINE_KAFKA_BOOTSTRAP": bootstrap, "PEREGRINE_SYSCALL_TOPIC": topics["syscall"]}, "replay", str(events))
        assert code == 0, out
        alerts = await read_topic(stack.bootstrap_servers, topics["alerts"], expect=1, timeout=120, setup=setup)
        assert [orjson.loads(a.value)["rule"] for a in alerts] == ["Shell in container"], setup.log_text()
        hits = await search_all(opensearch, prefix, expect=1, timeout=120)
        assert [h["_source"]["rule"] for h in hits] == ["Shell in container"], setup.log_text()
    finally:
        setup.stop_all()
        await opensearch.indices.delete(index=f"{prefix}*", ignore_unavailable=True)


async def test_worker_and_replay_over_tls_turn_an_event_into_an_alert(stack, tls, topic_factory, opensearch, tmp_path):
    env = {k: v for k, v in tls.items() if k != "bootstrap"}
    await event_to_alert(stack, tls["bootstrap"], env, topic_factory, opensearch, tmp_path, "tls")


def test_worker_that_does_not_trust_the_brokers_ca_exits_2_with_one_line(tls):
    """No PEREGRINE_KAFKA_CA_FILE: the system's CAs, which did not sign the local broker's certificate."""
    code, out = run({"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SSL", "PEREGRINE_KAFKA_CA_FILE": "",
                     "PEREGRINE_KAFKA_BOOTSTRAP": tls["bootstrap"]}, "worker")
    assert code == 2 and len(lines(out)) == 1, out
    assert f"TLS to Kafka at {tls['bootstrap']} failed (SSLCertVerificationError" in out, out
    assert out.strip().endswith("check PEREGRINE_KAFKA_CA_FILE and PEREGRINE_KAFKA_SECURITY_PROTOCOL"), out


def test_replay_with_tls_to_the_plaintext_port_says_the_protocol_may_not_match(stack, tls, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(shell("ctls2", 4344, 1_700_000_000_000_000_000)) + b"\n")
    code, out = run({"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SSL", "PEREGRINE_KAFKA_CA_FILE": tls["PEREGRINE_KAFKA_CA_FILE"],
                     "PEREGRINE_KAFKA_BOOTSTRAP": stack.bootstrap_servers}, "replay", str(events))
    assert code == 2 and "Traceback" not in out, out
    # the plaintext listener reads the TLS hello as a request and closes the connection
    assert f"error: Kafka at {stack.bootstrap_servers} closed the connection during the TLS handshake (" in out, out
    assert "is it a TLS listener? check PEREGRINE_KAFKA_SECURITY_PROTOCOL (SSL)" in out, out


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_worker_and_replay_over_sasl_ssl_turn_an_event_into_an_alert(stack, tls, topic_factory, opensearch, tmp_path, mechanism):
    """SASL over TLS: the local Kafka's SASL_SSL listener, the SASL test user and the local CA."""
    local = stack_settings.StackSettings.from_env()
    bootstrap = local.kafka_sasl_ssl_bootstrap
    env = {"PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PEREGRINE_KAFKA_CA_FILE": str(local.kafka_ca_file),
           "PEREGRINE_KAFKA_SASL_MECHANISM": mechanism, "PEREGRINE_KAFKA_SASL_USERNAME": stack_settings.KAFKA_SASL_USER,
           "PEREGRINE_KAFKA_SASL_PASSWORD": stack_settings.KAFKA_SASL_PASSWORD}
    await event_to_alert(stack, bootstrap, env, topic_factory, opensearch, tmp_path, "saslssl")
    # the right CA and a wrong password: the SASL error, not a TLS one
    code, out = run({**env, "PEREGRINE_KAFKA_BOOTSTRAP": bootstrap, "PEREGRINE_KAFKA_SASL_PASSWORD": "wrong"}, "worker")
    assert code == 2 and "refused the SASL credentials of user peregrine" in out and "Traceback" not in out, out
