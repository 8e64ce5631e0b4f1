"""A post whose body is over the limit gets 413 and the end of its connection: kept open, the
client and the server could disagree about where the unread body ends (aiohttp read and dropped
it for up to 10 s, taking a client's next request for more of it). The answer says
Connection: close and the server half-closes at once, reading and dropping what still comes of
the body, so a client sending all of it reads the answer and not a reset. The real receiver on
a loopback port, over raw connections."""

from __future__ import annotations

import asyncio
import gzip
import logging

from webhook_serving import (EVENTLIST, hung_up_within, loopback_settings, post_bytes, read_answer_and_headers, self_signed,
                             serving, trusting, until)

MAX_BODY_BYTES = 64_000
PROMPTLY_S = 5.0  # well under aiohttp's 10 s of reading and dropping a body answered before it was read


def _head(content_length: int, extra: str = "") -> bytes:
    return (f"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {content_length}\r\n\r\n").encode()


async def test_a_413_before_the_body_ends_the_connection_and_a_next_request_is_not_read():
    async with serving(loopback_settings(max_body_bytes=MAX_BODY_BYTES)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(_head(MAX_BODY_BYTES + 1))
        status, headers, body = await read_answer_and_headers(reader)
        assert (status, headers["connection"]) == (413, "close"), (status, headers)
        assert body == b'{"reason": "body of 64001 bytes is over the limit of 64000"}'
        # a client that, answered, sends no body and goes on with its next request on the connection
        writer.write(post_bytes(EVENTLIST))
        assert await hung_up_within(reader, PROMPTLY_S) == b""
        writer.close()
        assert receiver.producer.sent == []


async def test_a_client_sending_its_whole_body_over_the_limit_reads_the_413_not_a_reset():
    async with serving(loopback_settings(max_body_bytes=MAX_BODY_BYTES)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        body = b"x" * (4 * 1024 * 1024)  # more than the sockets' buffers hold: the server must read it

        async def send() -> None:
            writer.write(_head(len(body)) + body)
            await writer.drain()

        sending = asyncio.ensure_future(send())
        status, headers, _ = await read_answer_and_headers(reader)
        assert (status, headers["connection"]) == (413, "close")
        assert await hung_up_within(reader, PROMPTLY_S) == b""
        await asyncio.wait_for(sending, PROMPTLY_S)  # all of it was taken: no reset under it
        writer.close()


async def test_a_chunked_body_found_over_the_limit_while_read_ends_the_connection():
    async with serving(loopback_settings(max_body_bytes=MAX_BODY_BYTES)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        chunk = b"x" * 16_000
        writer.write(b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 5)  # 80,000 bytes, and no last chunk yet
        status, headers, body = await read_answer_and_headers(reader)
        assert (status, headers["connection"]) == (413, "close")
        assert body == b'{"reason": "body is over the limit of 64000 bytes"}'
        assert await hung_up_within(reader, PROMPTLY_S) == b""
        writer.close()


async def test_a_body_over_the_limit_that_does_not_decode_is_dropped_without_an_error_logged(caplog):
    """aiohttp logged "Unhandled exception", with a traceback, when the body it read and dropped
    after the 413 turned out not to be gzip: the client's doing, not the server's."""
    body = b"not gzip at all " * 8_000
    async with serving(loopback_settings(max_body_bytes=MAX_BODY_BYTES)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        with caplog.at_level(logging.DEBUG):
            writer.write(_head(len(body), "Content-Encoding: gzip\r\n") + body)
            status, headers, _ = await read_answer_and_headers(reader)
            assert (status, headers["connection"]) == (413, "close")
            await hung_up_within(reader, PROMPTLY_S)
            writer.close()
            # a gzip body under the limit is still read, on a new connection
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            compressed = gzip.compress(EVENTLIST)
            writer.write(_head(len(compressed), "Content-Encoding: gzip\r\n") + compressed)
            assert (await read_answer_and_headers(reader))[0] == 200
            writer.close()
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_over_tls_the_413_says_connection_close(tmp_path):
    """A TLS connection cannot be half-closed: the answer's Connection: close tells the client,
    and the server closes once the body has come (here, when the client hangs up)."""
    cert, key = self_signed(tmp_path)
    async with serving(loopback_settings(max_body_bytes=MAX_BODY_BYTES, tls_cert=cert, tls_key=key)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port, ssl=trusting(cert))
        writer.write(_head(MAX_BODY_BYTES + 1))
        status, headers, _ = await read_answer_and_headers(reader)
        assert (status, headers["connection"]) == (413, "close")
        writer.close()
        await until(lambda: receiver.connections.open == 0, "the connection closed on the server's side")
