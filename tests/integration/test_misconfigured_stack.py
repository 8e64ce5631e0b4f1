"""Misconfigurations an operator makes, on the real stack: `peregrine worker` and `peregrine replay`
end with one line naming the setting at fault, exit 2, and take no longer than their start-up
budget. (Refused or unknown credentials, TLS, a closed port, a missing topic and the partition
count are in test_pipeline_cli.py, test_kafka_credentials.py and test_kafka_tls.py; values the
settings refuse in tests/unit/test_worker_misconfiguration.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

from pipeline_harness import PEREGRINE, ROOT, RULES


def run(env_extra: dict[str, str], *args: str, startup_timeout_s: int = 5) -> tuple[int, list[str], float]:
    env = dict(os.environ, PEREGRINE_STARTUP_TIMEOUT_S=str(startup_timeout_s), PEREGRINE_RULES=str(RULES), **env_extra)
    began = time.monotonic()
    done = subprocess.run([PEREGRINE, *args], env=env, capture_output=True, text=True, timeout=180, cwd=str(ROOT))
    out = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, out, time.monotonic() - began


class SilentBroker:
    """Accepts connections and never answers: to a client, a host that drops what it is sent."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_a_broker_that_never_answers_ends_the_worker_within_its_startup_timeout(stack):
    silent = SilentBroker()
    try:
        code, out, took = run({"PEREGRINE_BROKER": silent.address}, "worker", startup_timeout_s=20)
    finally:
        silent.close()
    assert code == 2 and len(out) == 1, out
    assert out[0].startswith(f"error: Kafka broker {silent.address} did not answer within 20s (TimeoutError)")
    # the clients' 20 s, then what is left of it for the probe (it took 20 s more: 40 s)
    assert took < 35, took


def test_a_plaintext_client_on_the_tls_listener_is_told_the_listener_closed_it(stack):
    broker = stack.settings.kafka_ssl_bootstrap
    code, out, _ = run({"PEREGRINE_BROKER": broker}, "worker")
    assert code == 2 and len(out) == 1, out
    # was "did not answer within 5s", at once
    assert out[0].startswith(f"error: Kafka at {broker} closed the connection without answering (KafkaConnectionError): "
                             "is it a Kafka listener for PEREGRINE_KAFKA_SECURITY_PROTOCOL (PLAINTEXT)?")


def test_replay_to_a_topic_that_does_not_exist_exits_2_with_one_line(stack, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"evt.type": "execve", "container.id": "c1"}\n')
    missing = f"peregrine-test-no-such-topic-{os.getpid()}"
    # was 40 s of "Topic ... not found in cluster metadata", then UnknownTopicOrPartitionError's traceback
    for env, args, fix in (({"PEREGRINE_SYSCALL_TOPIC": missing}, [], "the PEREGRINE_*_TOPIC settings"),
                           ({}, ["--topic", missing], "--topic")):
        code, out, _ = run(env, "replay", str(events), *args)
        assert code == 2, out
        assert out[-1] == (f"error: Kafka topic(s) missing on {stack.bootstrap_servers}: {missing}; "
                           f"create them with `peregrine stack provision` or fix {fix}")
        assert not any("not found in cluster metadata" in line or "Traceback" in line for line in out), out


def test_a_state_directory_the_worker_cannot_write_is_one_line(stack, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, _ = run({"PEREGRINE_DATA_DIR": str(blocker / "state"), "PEREGRINE_APP_ID": "pg-test-state-dir"}, "worker")
    assert code == 2 and len(out) == 1, out  # was a NotADirectoryError traceback, exit 1
    assert out[0].startswith(f"error: PEREGRINE_DATA_DIR={blocker / 'state'}: cannot write the worker's state directory")
