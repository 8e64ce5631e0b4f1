"""The connection cap's parts without a server: the count, the sockets that give their slot
back, the setting (flag, variable, default) and its errors. The real receiver is in
test_webhook_capped_server.py."""

from __future__ import annotations

import logging
import socket

import pytest

from pipeline import metrics
from pipeline.cli.main import main
from pipeline.errors import ConfigError
from pipeline.webhook.connection_cap import LOG_EVERY_S, CappedListener, ConnectionCap, CountedConnection
from pipeline.webhook.settings import WebhookSettings


def test_a_cap_gives_slots_until_it_is_full_and_counts_the_refusals():
    refused = metrics.WEBHOOK_CONNECTIONS_REFUSED._value.get()
    cap = ConnectionCap(2)
    assert [cap.take(), cap.take(), cap.take(), cap.take()] == [True, True, False, False]
    assert cap.open == 2 and metrics.REGISTRY.get_sample_value("peregrine_webhook_open_connections") == 2
    assert metrics.REGISTRY.get_sample_value("peregrine_webhook_max_connections") == 2
    assert metrics.WEBHOOK_CONNECTIONS_REFUSED._value.get() == refused + 2
    cap.give_back()
    assert cap.take() and not cap.take()


def test_refusals_are_logged_at_once_then_at_most_every_ten_seconds(caplog):
    now = [100.0]
    cap = ConnectionCap(1, clock=lambda: now[0])
    cap.take()
    with caplog.at_level(logging.WARNING, logger="peregrine.webhook"):
        cap.take()
        now[0] += LOG_EVERY_S - 1
        cap.take()
        cap.take()
        now[0] += 1
        cap.take()
    assert [r.getMessage()[:28] for r in caplog.records] == ["reset 1 new connection(s): 1", "reset 3 new connection(s): 1"]
    assert "--max-connections or PEREGRINE_WEBHOOK_MAX_CONNECTIONS" in caplog.records[0].getMessage()


def test_a_counted_connection_gives_its_slot_back_once_however_it_is_let_go():
    cap = ConnectionCap(5)
    for let_go in ("close", "close twice", "detach", "context"):
        ours, theirs = socket.socketpair()
        assert cap.take()
        connection = CountedConnection(ours, cap)
        assert ours.fileno() == -1 and cap.open == 1  # it took the descriptor over
        if let_go == "detach":
            socket.socket(fileno=connection.detach()).close()
        elif let_go == "context":
            with connection:
                pass
        else:
            connection.close()
            if let_go == "close twice":
                connection.close()
        assert cap.open == 0, let_go
        theirs.close()


def test_the_listener_resets_what_it_has_no_slot_for_and_hands_out_the_next():
    cap = ConnectionCap(1)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        listener = CappedListener(listening, cap)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        first, _ = listener.accept()
        assert isinstance(first, CountedConnection) and cap.open == 1
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # the other two were reset, none is left waiting
            listener.accept()
        for client in clients[1:]:
            with pytest.raises(ConnectionResetError):
                client.recv(1)
        first.close()
        late = socket.create_connection(("127.0.0.1", port))
        listener.setblocking(True)
        second, _ = listener.accept()
        assert cap.open == 1
        for sock in (second, late, listener, *clients):
            sock.close()
        assert cap.open == 0


def test_the_setting_from_the_flag_the_variable_or_the_default():
    env = {"PEREGRINE_WEBHOOK_MAX_CONNECTIONS": " 500 "}
    assert WebhookSettings.from_env({}).max_connections is None  # the open-files limit decides at start-up
    assert WebhookSettings.from_env(env).max_connections == 500
    assert WebhookSettings.from_env(env, max_connections=7).max_connections == 7
    assert WebhookSettings.from_env({"PEREGRINE_WEBHOOK_MAX_CONNECTIONS": ""}).max_connections is None


@pytest.mark.parametrize("env, flags, says", [
    ({"PEREGRINE_WEBHOOK_MAX_CONNECTIONS": "lots"}, {}, "PEREGRINE_WEBHOOK_MAX_CONNECTIONS='lots' is not a whole number"),
    ({"PEREGRINE_WEBHOOK_MAX_CONNECTIONS": "0"}, {},
     "--max-connections (or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) is 0: it must be at least 1"),
    ({}, {"max_connections": -3}, "--max-connections (or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) is -3: it must be at least 1"),
])
def test_a_cap_that_cannot_work_is_a_config_error(env, flags, says):
    with pytest.raises(ConfigError) as caught:
        WebhookSettings.from_env(env, **flags)
    assert str(caught.value).startswith(says)


def test_the_flag_is_refused_before_anything_connects(capsys):
    assert main(["webhook", "--max-connections", "0"]) == 2
    err = capsys.readouterr().err
    assert "--max-connections (or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) is 0" in err and "Traceback" not in err
    assert main(["webhook", "--help"]) == 0
    assert "--max-connections" in capsys.readouterr().out
