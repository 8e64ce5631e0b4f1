"""A port already taken is found before a server is started, naming who holds it."""

from __future__ import annotations

import os
import socket

import pytest

from pipeline.errors import StackError
from pipeline.stack.ports import ensure_port_free, listener_pid, port_in_use


@pytest.fixture
def listening_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_listening_port_is_in_use_and_its_holder_is_found(listening_port):
    assert port_in_use("127.0.0.1", listening_port)
    assert listener_pid(listening_port) == os.getpid()


def test_taken_port_gives_a_stack_error_naming_port_holder_and_variable(listening_port):
    with pytest.raises(StackError) as error:
        ensure_port_free("127.0.0.1", listening_port, "OpenSearch", "PEREGRINE_OPENSEARCH_PORT")
    text = str(error.value)
    assert f"127.0.0.1:{listening_port}" in text
    assert f"pid {os.getpid()}" in text
    assert "PEREGRINE_OPENSEARCH_PORT" in text
    assert "\n" not in text


def test_free_port_passes():
    port = _free_port()
    assert not port_in_use("127.0.0.1", port)
    ensure_port_free("127.0.0.1", port, "Kafka", "PEREGRINE_KAFKA_PORT")
