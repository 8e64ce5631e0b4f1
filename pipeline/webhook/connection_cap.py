"""The cap on open connections (``--max-connections``, ``PEREGRINE_WEBHOOK_MAX_CONNECTIONS``).

Every slow client holds a file descriptor until the read timeout closes its connection;
without a cap, clients opening connections faster than they time out ran the process out
of descriptors, and then nobody was served. Connections are counted where the descriptor
is spent: :class:`CappedListener` is the listening socket the event loop accepts from, and
each connection it hands out gives its slot back when the loop closes it (a TLS handshake in
progress holds a slot too).

A connection accepted while the cap's worth are open is reset at once (``SO_LINGER`` 0):
it holds its descriptor only for the accept, and the client sees "connection reset by peer",
which kube-apiserver's webhook backend retries with backoff (it does not retry a clean close,
and a 503 could only be sent after the TLS handshake, whose cost the cap is there to bound).
Refusals are counted (``peregrine_webhook_connections_refused_total``) and logged at most
every :data:`LOG_EVERY_S`. Relies on the selector event loop calling ``accept()`` on the
socket it was given, as asyncio's does.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from typing import Callable

from pipeline import metrics

log = logging.getLogger("peregrine.webhook")

LOG_EVERY_S = 10.0
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}: close sends RST


class ConnectionCap:
    """How many connections are open, of at most ``limit``."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"a connection cap of {limit}: it must be at least 1")
        self.limit = limit
        self.open = 0
        self._clock = clock
        self._unreported = 0  # refusals not logged yet
        self._next_report = float("-inf")
        metrics.WEBHOOK_MAX_CONNECTIONS.set(limit)
        # read when scraped: a cap's count, not increments that another (a test's) could skew
        metrics.WEBHOOK_CONNECTIONS.set_function(lambda: self.open)

    def take(self) -> bool:
        """A slot for a connection just accepted; False (counted, logged) when none is free."""
        if self.open >= self.limit:
            self._refused()
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1

    def _refused(self) -> None:
        metrics.WEBHOOK_CONNECTIONS_REFUSED.inc()
        self._unreported += 1
        now = self._clock()
        if now >= self._next_report:
            log.warning("reset %d new connection(s): %d are open, the cap (--max-connections or "
                        "PEREGRINE_WEBHOOK_MAX_CONNECTIONS); slow or idle clients hold them until the read timeout",
                        self._unreported, self.open)
            self._unreported = 0
            self._next_report = now + LOG_EVERY_S


class CountedConnection(socket.socket):
    """An accepted connection that gives its slot back when it is closed (or detached)."""

    def __init__(self, accepted: socket.socket, cap: ConnectionCap) -> None:
        super().__init__(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        self._cap: ConnectionCap | None = cap

    def _give_back(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.give_back()

    def close(self) -> None:
        self._give_back()
        super().close()

    def detach(self) -> int:
        self._give_back()
        return super().detach()


class CappedListener(socket.socket):
    """The listening socket: ``accept()`` hands out connections while the cap has room and
    resets the others, going on to the next one waiting (BlockingIOError when none is: the
    event loop's cue to stop accepting for now)."""

    def __init__(self, listening: socket.socket, cap: ConnectionCap) -> None:
        super().__init__(listening.family, listening.type, listening.proto, fileno=listening.detach())
        self.cap = cap

    def accept(self) -> tuple[socket.socket, object]:
        while True:
            accepted, address = super().accept()
            if self.cap.take():
                return CountedConnection(accepted, self.cap), address
            _reset(accepted)


def _reset(accepted: socket.socket) -> None:
    try:
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    except OSError:
        pass  # the client is gone already
    accepted.close()


__all__ = ["CappedListener", "ConnectionCap", "CountedConnection", "LOG_EVERY_S"]
