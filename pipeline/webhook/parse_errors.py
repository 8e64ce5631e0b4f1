"""Requests aiohttp's HTTP parser refuses, answered as the handler answers, and at once.

aiohttp parses a connection's heads and bodies with one parser. When it refuses bytes of a
body the handler is reading (a chunk-size line that is not hexadecimal, chunk data longer than
its size, a deflate stream cut short), aiohttp queues a 400 for after that request and leaves
the request's body waiting for bytes that will never be parsed: the handler's read waited out
the read timeout and answered 408. :class:`BodyErrorsParser` hands the error to that body, so
the read fails at once with aiohttp's ``RequestPayloadError``, which server.py answers 400 and
closes the connection on. The same body is failed when its connection is lost: aiohttp fails
only the body of a request the handler still handles, and a body answered before it was read
(401, 413, 503), which aiohttp goes on reading and dropping, waited the whole 10 s of that on a
connection already closed, and held a shutdown as long.

A head the parser refuses aiohttp answered itself, in text/plain.
:meth:`ParseErrorsHandler.handle_error` answers JSON ``{"reason": ...}`` as every other refusal
is answered: 415 for a Content-Encoding aiohttp has no decoder for (br or zstd without their
optional packages, which it refuses as it reads the head, before the handler runs), 400 for the
rest, and the connection closed (the parser cannot go on from a refused head).

It leans on one private attribute of aiohttp's RequestHandler (3.14): ``_parser``, the parser
it feeds each read's bytes. tests/unit/test_webhook_parse_errors.py fails if that changes.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD

from pipeline.webhook.answers import ACCEPTED_ENCODINGS, answer, description, unsupported_encoding
from pipeline.webhook.stalled_heads import HeadWatchingHandler

log = logging.getLogger("peregrine.webhook")


class BodyErrorsParser:
    """aiohttp's request parser, which also fails the body still being parsed (that of the last
    request it parsed, if it has not ended) when it refuses bytes."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._body: Any = EMPTY_PAYLOAD

    def feed_data(self, data: bytes) -> Any:
        try:
            messages, upgraded, tail = self._parser.feed_data(data)
        except HttpProcessingError as error:
            self.fail_body(str(error), error)
            raise
        if messages:
            self._body = messages[-1][1]  # the body the bytes after these go to
        return messages, upgraded, tail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def fail_body(self, reason: str, cause: BaseException | None = None) -> None:
        """Fail the body still being parsed, if there is one: ended, an error is in the head of
        the request after it (answered by handle_error)."""
        body = self._body
        if body.is_eof() or body.exception() is not None:
            return
        refused = web.RequestPayloadError(reason)
        refused.__cause__ = cause  # as aiohttp's own body errors: the handler quotes the cause
        body.set_exception(refused)


class ParseErrorsHandler(HeadWatchingHandler):
    """aiohttp's connection handler (with the stalled heads counted), whose refusals of what
    its parser cannot read are JSON and prompt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parser = BodyErrorsParser(self._parser)

    def connection_lost(self, exc: BaseException | None) -> None:
        parser = self._parser  # dropped by aiohttp's connection_lost
        super().connection_lost(exc)
        if isinstance(parser, BodyErrorsParser):
            parser.fail_body("the connection was closed before the body ended", exc)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if isinstance(exc, ContentEncodingError) and _no_decoder(exc):
            log.warning("answering 415 to %s: %s", request.remote, description(exc))
            response = unsupported_encoding(None)
        elif isinstance(exc, ContentEncodingError):
            log.warning("answering 400 to %s: its body cannot be read: %s", request.remote, description(exc))
            response = answer(400, {"reason": f"body cannot be read: {description(exc)}"})
        elif isinstance(exc, HttpProcessingError):
            log.warning("answering %d to %s: its request cannot be read: %s", status, request.remote, description(exc))
            response = answer(status, {"reason": f"request cannot be read: {description(exc)}"})
        else:
            # the handler raised: aiohttp logs the traceback, and refuses if an answer was begun
            super().handle_error(request, status, exc, message)
            response = answer(status, {"reason": f"{HTTPStatus(status).phrase} (the webhook's log has it)"})
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # a body answered before it was read (401, 413, 503) that turns out unreadable, or whose
        # connection is lost, while aiohttp reads and drops it: the client's doing, not a fault of
        # the server's; aiohttp closes the connection
        if isinstance(kwargs.get("exc_info"), web.RequestPayloadError):
            log.debug("stopped reading a body answered before it was read: %s", kwargs["exc_info"])
            return
        super().log_exception(*args, **kwargs)


def _no_decoder(error: ContentEncodingError) -> bool:
    """Whether aiohttp refused the coding itself, not a body in it. It raises ContentEncodingError
    as it reads a head whose coding it has no decoder for (br, zstd), and for a gzip or deflate
    body that does not decode; the second comes here, not to the body's read, when the head and
    the whole body came in one read (aiohttp drops the request with the error). Its message names
    the coding."""
    said = str(error.message).lower()
    return not any(coding in said for coding in ACCEPTED_ENCODINGS)


__all__ = ["BodyErrorsParser", "ParseErrorsHandler"]
