"""Request heads the read timeout cut off, counted (``peregrine_webhook_stalled_heads_total``).

aiohttp's keep-alive timer, set to the read timeout, closes a connection whose next request
head is not complete within it of the connection's opening or of its previous answer
(server.py). It closes it without an answer, so no request is counted. This handler notes
when bytes of a request head have come that no complete head has followed yet, and counts
the connections the timer closes in that state. A kept-alive connection idle since its
answer, or one opened and never written to, is closed by the same timer and not counted.

It leans on aiohttp's RequestHandler (3.14) beyond its documented surface: ``_waiter`` (the
future its loop awaits for the next request head), ``_request_count`` (heads parsed) and
``_process_keepalive`` (the timer's callback). tests/unit/test_webhook_slow_clients.py fails
if they change meaning; serving does not depend on them.
"""

from __future__ import annotations

import logging

from aiohttp import web

from pipeline import metrics

log = logging.getLogger("peregrine.webhook")


class HeadWatchingHandler(web.RequestHandler):
    head_begun = False  # bytes of a request head came, and the head is not complete yet

    def data_received(self, data: bytes) -> None:
        # getattr: an aiohttp without them miscounts (and the tests say so) but still serves
        parsed = getattr(self, "_request_count", 0)
        waiter = getattr(self, "_waiter", None)
        # waiting for a request head (before a connection's first, the loop may not wait yet);
        # otherwise the bytes are a body's, read while its request is handled or after its answer
        between_requests = (waiter is not None and not waiter.done()) or parsed == 0
        super().data_received(data)
        if data and between_requests:
            self.head_begun = getattr(self, "_request_count", 0) == parsed

    def _process_keepalive(self) -> None:
        transport = self.transport
        super()._process_keepalive()
        if transport is not None and self.transport is None and self.head_begun:
            metrics.WEBHOOK_STALLED_HEADS.inc()
            log.debug("closed the connection from %s: its request head was not complete within the read timeout",
                      transport.get_extra_info("peername"))


__all__ = ["HeadWatchingHandler"]
