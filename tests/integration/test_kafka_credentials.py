"""Kafka credentials for real: the local Kafka's SASL_PLAINTEXT listener (PLAIN and
SCRAM-SHA-256; pipeline/stack/kafka.py, user peregrine) with `peregrine worker`, `replay` and
`webhook`. The right credentials carry an event to an alert in OpenSearch; a
wrong password exits 2 with one line naming the problem, never a hang."""

from __future__ import annotations

import os
import subprocess
import uuid

import orjson
import pytest

from pipeline.stack import settings as stack_settings
from pipeline_harness import PEREGRINE, ROOT, RULES, WorkerSetup, free_port, read_topic, search_all

SASL = {
    "PEREGRINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PEREGRINE_KAFKA_SASL_MECHANISM": "PLAIN",
    "PEREGRINE_KAFKA_SASL_USERNAME": stack_settings.KAFKA_SASL_USER,
    "PEREGRINE_KAFKA_SASL_PASSWORD": stack_settings.KAFKA_SASL_PASSWORD,
}


@pytest.fixture(scope="module")
def sasl_bootstrap(stack) -> str:
    return stack_settings.StackSettings.from_env().kafka_sasl_bootstrap


def run(env_extra: dict[str, str], *args: str) -> tuple[int, str]:
    env = dict(os.environ, PEREGRINE_STARTUP_TIMEOUT_S="20", PEREGRINE_RULES=str(RULES), **env_extra)
    done = subprocess.run([PEREGRINE, *args], env=env, capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    return done.returncode, done.stdout + done.stderr


def lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def shell(container: str, pid: int, t: int) -> dict:
    return {"evt.type": "execve", "evt.time": t, "evt.num": t, "proc.pid": pid, "proc.ppid": 1,
            "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": container}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_worker_and_replay_with_sasl_credentials_turn_an_event_into_an_alert(stack, sasl_bootstrap, topic_factory,
                                                                                    opensearch, tmp_path, mechanism):
    topics = {name: await topic_factory(1, prefix=f"pg-sasl-{name}")
              for name in ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter")}
    prefix = f"peregrine-alerts-test-sasl-{uuid.uuid4().hex[:8]}-"
    sasl = {**SASL, "PEREGRINE_KAFKA_SASL_MECHANISM": mechanism}
    setup = WorkerSetup(sasl_bootstrap, stack.opensearch_url, topics, prefix, tmp_path / "worker",
                        extra={**sasl, "PEREGRINE_CONFIG_AUDIT": "false"})
    try:
        setup.start()
        events = tmp_path / "events.jsonl"
        events.write_bytes(orjson.dumps(shell("csasl1", 4242, 1_700_000_000_000_000_000)) + b"\n")
        code, out = run({**sasl, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_SYSCALL_TOPIC": topics["syscall"]},
                        "replay", str(events))
        assert code == 0, out
        # read back on the plaintext listener: the same broker, so the same records
        alerts = await read_topic(stack.bootstrap_servers, topics["alerts"], expect=1, timeout=120, setup=setup)
        assert len(alerts) == 1, setup.log_text()
        assert orjson.loads(alerts[0].value)["rule"] == "Shell in container"
        hits = await search_all(opensearch, prefix, expect=1, timeout=120)
        assert [h["_source"]["rule"] for h in hits] == ["Shell in container"], setup.log_text()
    finally:
        setup.stop_all()
        await opensearch.indices.delete(index=f"{prefix}*", ignore_unavailable=True)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_worker_with_a_wrong_password_exits_2_with_one_line(sasl_bootstrap, mechanism):
    code, out = run({**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_KAFKA_SASL_PASSWORD": "not-the-password",
                     "PEREGRINE_KAFKA_SASL_MECHANISM": mechanism}, "worker")
    assert code == 2, out
    assert lines(out) == [
        f"error: Kafka at {sasl_bootstrap} refused the SASL credentials of user {stack_settings.KAFKA_SASL_USER} "
        "(SaslAuthenticationFailed): check PEREGRINE_KAFKA_SASL_USERNAME/PASSWORD"
    ], out


def test_worker_with_the_password_in_a_file(sasl_bootstrap, tmp_path):
    """A wrong password read from PEREGRINE_KAFKA_SASL_PASSWORD_FILE is refused the same way
    (the file is read: a missing file would be a different error)."""
    secret = tmp_path / "kafka-password"
    secret.write_text("wrong-from-file\n")
    env = {**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_KAFKA_SASL_PASSWORD": "",
           "PEREGRINE_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    code, out = run(env, "worker")
    assert code == 2 and "refused the SASL credentials" in out and "Traceback" not in out, out


def test_worker_with_a_mechanism_the_listener_does_not_enable(sasl_bootstrap):
    code, out = run({**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
                    "worker")
    assert code == 2 and len(lines(out)) == 1, out
    assert "does not enable SASL mechanism SCRAM-SHA-512" in out, out


def test_worker_speaking_sasl_to_the_plaintext_listener(stack):
    code, out = run({**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": stack.bootstrap_servers}, "worker")
    assert code == 2 and len(lines(out)) == 1, out
    assert "does not speak SASL on this listener" in out, out


def test_webhook_with_a_wrong_password_exits_2_with_one_line(sasl_bootstrap):
    code, out = run({**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_KAFKA_SASL_PASSWORD": "not-the-password"},
                    "webhook", "--listen", f"127.0.0.1:{free_port()}")
    assert code == 2, out
    assert len(lines(out)) == 1 and "refused the SASL credentials of user peregrine" in out, out


def test_replay_with_a_wrong_password_exits_2_with_one_line(sasl_bootstrap, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(shell("csasl2", 1, 1_700_000_000_000_000_000)) + b"\n")
    code, out = run({**SASL, "PEREGRINE_KAFKA_BOOTSTRAP": sasl_bootstrap, "PEREGRINE_KAFKA_SASL_PASSWORD": "not-the-password"},
                    "replay", str(events))
    assert code == 2, out
    assert "refused the SASL credentials of user peregrine" in out and "Traceback" not in out, out
