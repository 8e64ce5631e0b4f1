"""A worker started at -l warn stays at WARN once it runs (pipeline/stream/log_level.py)."""

from __future__ import annotations

import logging
import uuid

from faust.utils.terminal.spinners import Spinner, SpinnerHandler

from pipeline.stream.log_level import restore_root_level


def test_the_start_up_spinners_debug_level_is_undone_once_started():
    """What faust.worker.Worker._setup_spinner_handler does at -l warn: the console handler at
    WARN, a spinner handler at DEBUG, the logger at DEBUG (and left so)."""
    logger = logging.getLogger(f"peregrine-test-root-standin-{id(object())}")  # registered: setLevel clears its cache
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logger.addHandler(console)
    logger.addHandler(SpinnerHandler(Spinner(), level=logging.DEBUG))
    logger.setLevel(logging.DEBUG)
    assert logger.isEnabledFor(logging.DEBUG)

    assert restore_root_level(logger) is True
    assert logger.handlers == [console] and logger.level == logging.WARNING
    assert not logger.isEnabledFor(logging.DEBUG) and logger.isEnabledFor(logging.WARNING)
    assert restore_root_level(logger) is False  # nothing more to undo


def test_a_worker_at_info_or_debug_has_no_spinner_and_is_left_alone():
    logger = logging.getLogger(f"peregrine-test-root-standin-{id(object())}")  # registered: setLevel clears its cache
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    assert restore_root_level(logger) is False and logger.level == logging.INFO



def test_opensearch_py_keeps_its_failed_request_tracebacks_to_a_worker_at_debug():
    """While OpenSearch is away opensearch-py logs each failed request at WARNING with its
    traceback; the sink says why and when it retries. Only a worker at -l debug keeps both,
    whatever the level was when the filter went in (the app is made before logging is set)."""
    from pipeline.stream.log_level import quiet_opensearch_client

    client = logging.getLogger(f"peregrine-test-opensearch-standin-{uuid.uuid4()}")
    client.propagate = False
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    client.addHandler(Collect())
    client.setLevel(logging.DEBUG)
    quiet_opensearch_client(client)
    quiet_opensearch_client(client)  # once
    assert len(client.filters) == 1
    root = logging.getLogger()
    before = root.level
    try:
        for level, logged in ((logging.INFO, ["error"]), (logging.WARNING, ["error"]), (logging.DEBUG, ["warning", "error"])):
            root.setLevel(level)
            seen.clear()
            client.warning("warning")
            client.error("error")
            assert seen == logged, (logging.getLevelName(level), seen)
    finally:
        root.setLevel(before)
