"""A mistyped command line is a usage message and exit 2, not a traceback."""

from __future__ import annotations

import pytest

from pipeline.cli.main import main


@pytest.mark.parametrize("argv,says", [
    (["replay", "events.jsonl", "--kafka", "127.0.0.1:1"], "No such option: --kafka"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["worker", "--web-port", "http"], "Invalid value for '--web-port'"),
    (["replay"], "Missing argument"),
])
def test_a_usage_error_is_one_message_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize("argv,says", [
    (["replay", "events.jsonl", "--batch", "0"], "--batch must be at least 1"),
    (["replay", "events.jsonl", "--rate", "-5"], "--rate must be a number of events per second"),
    (["replay", "events.jsonl", "--rate", "nan"], "--rate must be a number of events per second"),
    (["alerts", "retention", "--days", "-1"], "--days must be 0 or more"),
])
def test_a_value_that_cannot_work_is_refused_before_anything_connects(argv, says, capsys):
    """A negative --rate was taken for 'as fast as possible' without a word."""
    assert main(argv) == 2
    assert says in capsys.readouterr().err
