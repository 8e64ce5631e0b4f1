"""A client that sends its request slowly, or half of it and then nothing, is disconnected
after the read timeout: aiohttp has none of its own, and each such connection held a
descriptor (and, while its body came, one of the posts-in-flight slots) for ever. The real
receiver on a loopback port; the deadlines asserted are generous (the test's timeout is 1 s,
the wait for the server to hang up 20 s), so a busy machine does not fail them. A connection
closed with a request head begun is counted (peregrine_webhook_stalled_heads_total); one idle
since its answer, or never written to, is not."""

from __future__ import annotations

import asyncio

import aiohttp

from pipeline import metrics
from webhook_serving import (EVENTLIST, hung_up_within, loopback_settings, post_bytes, read_answer, self_signed, serving,
                             trusting)

READ_TIMEOUT_S = 1.0
HANG_UP_WITHIN_S = 20.0  # a server that never hangs up fails the test after this


async def _until_hung_up(reader: asyncio.StreamReader) -> bytes:
    return await hung_up_within(reader, HANG_UP_WITHIN_S)


async def _drip(writer: asyncio.StreamWriter, data: bytes, pause_s: float = 0.2) -> None:
    """Send ``data`` one byte at a time: each byte well within the timeout, the whole far beyond it."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause_s)
    except (ConnectionError, OSError):
        pass  # the server hung up: what the test waits for


def _stalled() -> float:
    return metrics.WEBHOOK_STALLED_HEADS._value.get()


async def _post_normally(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=EVENTLIST) as response:
            return response.status, await response.json()


def _head(content_length: int, path: str = "/k8s-audit") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n").encode()


async def test_half_a_request_head_then_nothing_is_disconnected_counted_and_others_are_served():
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Le")
        await writer.drain()
        served = await _post_normally(receiver.url)  # while that connection is held
        assert await _until_hung_up(reader) == b""  # no answer: there was no request to answer
        writer.close()
        assert served == (200, {"accepted": 2, "trimmed": 0, "dropped": 0})
        assert [r.audit_id for r in receiver.producer.sent] == ["a", "b"]
        assert _stalled() == stalled + 1


async def test_a_head_sent_a_byte_at_a_time_is_disconnected():
    """Bytes that keep coming do not move the deadline: it runs from the connection's opening."""
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        endless_head = b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nX-Padding: " + b"a" * 4000
        drip = asyncio.ensure_future(_drip(writer, endless_head))
        try:
            assert await _until_hung_up(reader) == b""
        finally:
            drip.cancel()
            writer.close()
        assert _stalled() == stalled + 1
        assert (await _post_normally(receiver.url))[0] == 200


async def test_a_body_that_stops_coming_gets_408_and_the_connection_closed():
    answered_408 = metrics.WEBHOOK_REQUESTS.labels("408")._value.get()
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(_head(len(EVENTLIST)) + EVENTLIST[:20])
        await writer.drain()
        answer = await _until_hung_up(reader)
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout"
        assert b"Connection: close" in rest and b'"reason": "the body did not arrive within 1s"' in rest
        assert metrics.WEBHOOK_REQUESTS.labels("408")._value.get() == answered_408 + 1
        assert _stalled() == stalled  # a body's, not a head's
        assert receiver.producer.sent == []
        assert (await _post_normally(receiver.url))[0] == 200


async def test_a_body_sent_a_byte_at_a_time_is_cut_off():
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(_head(len(EVENTLIST)))
        await writer.drain()
        drip = asyncio.ensure_future(_drip(writer, EVENTLIST))  # 90 bytes: 18 s at 0.2 s a byte
        try:
            answer = await _until_hung_up(reader)
        finally:
            drip.cancel()
            writer.close()
        # hung up before the whole body came (which would have been a 200); a reset may overtake the 408
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
        assert receiver.producer.sent == []
        assert (await _post_normally(receiver.url))[0] == 200


async def test_an_idle_kept_alive_connection_is_closed_after_the_timeout_and_not_counted():
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(_head(len(EVENTLIST)) + EVENTLIST)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), HANG_UP_WITHIN_S)
        assert status_line == b"HTTP/1.1 200 OK\r\n"
        rest = await _until_hung_up(reader)  # the answer's headers and body, then the close
        writer.close()
        assert b"Connection: close" not in rest and rest.endswith(b'{"accepted": 2, "trimmed": 0, "dropped": 0}')
        assert _stalled() == stalled


async def test_a_connection_never_written_to_is_closed_and_not_counted():
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        assert await _until_hung_up(reader) == b""
        writer.close()
        assert _stalled() == stalled


async def test_a_second_head_that_stalls_on_a_kept_alive_connection_is_counted():
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(post_bytes())
        assert (await read_answer(reader))[0] == 200
        writer.write(b"POST /k8s-audit HTTP/1.1\r\nHo")
        assert await _until_hung_up(reader) == b""
        writer.close()
        assert _stalled() == stalled + 1


async def test_a_body_sent_after_an_early_answer_is_not_taken_for_a_head():
    """A post answered 401 before its body was read: the body that comes after the answer is
    read and dropped, and the connection then idles until the timeout: not a stalled head."""
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S, token="s3cret")) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(_head(len(EVENTLIST)))
        assert (await read_answer(reader))[0] == 401
        writer.write(EVENTLIST)
        assert await _until_hung_up(reader) == b""
        writer.close()
        assert _stalled() == stalled


async def test_a_head_that_stalls_after_the_tls_handshake_is_counted(tmp_path):
    """The first bytes after a handshake reach the handler before its loop waits for a head."""
    cert, key = self_signed(tmp_path)
    stalled = _stalled()
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S, tls_cert=cert, tls_key=key)) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port, ssl=trusting(cert))
        writer.write(b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Le")
        await writer.drain()
        assert await _until_hung_up(reader) == b""
        writer.close()
        assert _stalled() == stalled + 1
