"""A worker started at ``-l warn`` or above stays there once it runs.

For those levels Faust's worker shows a start-up spinner: it adds a handler at
DEBUG to the root logger and sets the root logger to DEBUG, and leaves both
after start-up. Every ``log.debug`` of aiokafka and Faust, several per record
produced ("Sending (key=... value=...)", "send: topic=..."), then built a
LogRecord, looked up its caller and went through the handlers, only for the
console handler to drop it. :func:`restore_root_level`, called once the app
has started (the spinner is done), removes the spinner's handler and sets the
root logger back to the level its remaining handlers were given.

While OpenSearch is away, opensearch-py logs every failed request at WARNING
with its full traceback, beside the sink's own line that says why it waits
and for how long. :func:`quiet_opensearch_client` (installed when the app is
made, before any request) keeps that client's warnings out unless the root
logger is at DEBUG when they are logged (``-l debug``); its errors always
pass.
"""

from __future__ import annotations

import logging

SPINNER_HANDLER = "SpinnerHandler"  # faust.utils.terminal.spinners


def restore_root_level(root: logging.Logger | None = None) -> bool:
    """Undo the start-up spinner's DEBUG root level; True when something was changed."""
    root = root or logging.getLogger()
    spinners = [h for h in root.handlers if type(h).__name__ == SPINNER_HANDLER]
    if not spinners:
        return False
    for handler in spinners:
        root.removeHandler(handler)
    levels = [h.level for h in root.handlers if h.level > logging.NOTSET]
    root.setLevel(min(levels) if levels else logging.WARNING)
    return True


class UnlessDebug(logging.Filter):
    """Passes errors, and anything else only while the root logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_opensearch_client(client: logging.Logger | None = None) -> None:
    """opensearch-py's warnings (one with a traceback per failed request) only at -l debug."""
    client = client or logging.getLogger("opensearch")
    if not any(isinstance(f, UnlessDebug) for f in client.filters):
        client.addFilter(UnlessDebug())
