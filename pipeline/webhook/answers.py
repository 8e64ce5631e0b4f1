"""The receiver's answers: JSON (``{"reason": ...}`` for a refusal), each counted in
``peregrine_webhook_requests_total{code}``. The handler (server.py) and the answers to requests
aiohttp's parser refuses (parse_errors.py) are built here, so a client reads every refusal the
same way."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from pipeline import metrics

# what aiohttp decodes (gzip, deflate) and a body sent as it is; br and zstd only when optional
# packages are installed, so they are refused whether or not they are: the contract does not
# change with what the image happens to hold
ACCEPTED_ENCODINGS = ("gzip", "deflate", "identity")
_ACCEPTED_SAID = f"{', '.join(ACCEPTED_ENCODINGS[:-1])} or {ACCEPTED_ENCODINGS[-1]}"


def answer(status: int, body: dict, headers: dict[str, str] | None = None) -> web.Response:
    metrics.WEBHOOK_REQUESTS.labels(str(status)).inc()
    return web.json_response(body, status=status, headers=headers)


def accepts_encoding(content_encodings: list[str]) -> bool:
    """Whether the body's Content-Encoding headers name one coding the webhook decodes. Two
    headers, or a list in one, mean codings applied one after the other, which aiohttp does not
    decode (it would hand the handler the body still encoded). None, or an empty one, is identity."""
    if not content_encodings:
        return True
    return len(content_encodings) == 1 and content_encodings[0].strip().lower() in ACCEPTED_ENCODINGS + ("",)


def unsupported_encoding(content_encoding: str | None) -> web.Response:
    """415, with Accept-Encoding saying what would have been accepted (RFC 9110, 15.5.16)."""
    named = f"Content-Encoding {content_encoding}" if content_encoding else "the body's Content-Encoding"
    return answer(415, {"reason": f"{named} is not one the webhook decodes: send {_ACCEPTED_SAID}"},
                  {"Accept-Encoding": ", ".join(ACCEPTED_ENCODINGS)})


def description(error: HttpProcessingError) -> str:
    """What aiohttp's parser says went wrong, without the bytes it quotes under it and the caret
    pointing into them (on one line they point nowhere)."""
    lines = str(error.message).strip().splitlines()
    return lines[0].strip().rstrip(":") if lines else type(error).__name__
