"""What aiohttp's HTTP parser refuses is answered at once, in JSON, and the connection closed
(pipeline/webhook/parse_errors.py). A body whose chunks the parser refused, after its head had
been read, was answered 408 when the read timeout ran out (the parser never told the body);
refused with its head, it got aiohttp's own text/plain 400. The real receiver on a loopback
port, over raw connections: a head sent alone is parsed before the bytes after it come."""

from __future__ import annotations

import asyncio
import zlib

import orjson
import pytest

from pipeline.webhook.server import Receiver
from webhook_serving import EVENTLIST, KeepingProducer, hung_up_within, loopback_settings, read_answer_and_headers, serving

READ_TIMEOUT_S = 30.0
PROMPTLY_S = 5.0  # far under the read timeout, which a body the parser refused used to wait out
CHUNKED_HEAD = b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
CUT_DEFLATE = zlib.compress(EVENTLIST)[:-6]
DEFLATE_HEAD = (b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Encoding: deflate\r\n"
                b"Content-Length: %d\r\n\r\n" % len(CUT_DEFLATE))

MALFORMED = {  # (head, body, what the parser says, which the reason ends with)
    "a chunk size that is not hexadecimal": (CHUNKED_HEAD, b"zz\r\nabc\r\n0\r\n\r\n", "Invalid character in chunk size"),
    "chunk data longer than its size": (CHUNKED_HEAD, b"5\r\nabcdefgh\r\n0\r\n\r\n", "Expected LF after chunk data"),
    "a bare LF after a chunk size": (CHUNKED_HEAD, b"5\nabcde\r\n0\r\n\r\n", "Missing expected CR after chunk size"),
    "a trailer that is no header": (CHUNKED_HEAD, b"5\r\nabcde\r\n0\r\nno trailer\r\n\r\n", "Invalid header token"),
    "a deflate stream cut short": (DEFLATE_HEAD, CUT_DEFLATE, "deflate"),
}


async def _exchange(receiver, head: bytes, body: bytes, head_alone: bool) -> tuple[int, dict[str, str], dict, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    try:
        if head_alone:
            writer.write(head)
            await writer.drain()
            await asyncio.sleep(0.1)  # the head is parsed, its handler reads the body
            writer.write(body)
        else:
            writer.write(head + body)
        status, headers, answer = await read_answer_and_headers(reader, PROMPTLY_S)
        assert headers["content-type"] == "application/json; charset=utf-8", (headers, answer)
        return status, headers, orjson.loads(answer), await hung_up_within(reader, PROMPTLY_S)
    finally:
        writer.close()


@pytest.mark.parametrize("head_alone", [True, False], ids=["head-then-body", "in-one-read"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_body_the_parser_refuses_is_a_prompt_json_400_and_the_end_of_its_connection(case, head_alone):
    head, body, said = MALFORMED[case]
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        status, headers, answer, after = await _exchange(receiver, head, body, head_alone)
        assert status == 400 and answer["reason"].endswith(f"cannot be read: {said}"), answer
        # an answer to an HTTP/1.1 head says so; one to a head the parser refused is HTTP/1.0, which closes anyway
        assert headers.get("connection", "close") == "close"
        assert after == b""  # the end of the connection, nothing more
        assert receiver.producer.sent == []


async def test_a_head_the_parser_refuses_is_answered_in_json():
    async with serving(loopback_settings(read_timeout_s=READ_TIMEOUT_S)) as receiver:
        status, _, answer, after = await _exchange(receiver, b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Length: abc\r\n\r\n",
                                                   b"", head_alone=False)
        assert status == 400 and answer == {"reason": "request cannot be read: Invalid character in Content-Length"}
        assert after == b""


class FailingProducer(KeepingProducer):
    async def send(self, records) -> None:
        raise RuntimeError("a bug of the webhook's own")


async def test_an_error_of_the_webhooks_own_is_answered_in_json_too():
    receiver = Receiver(loopback_settings(read_timeout_s=READ_TIMEOUT_S), producer=FailingProducer())  # type: ignore[arg-type]
    await receiver.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write((b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Length: %d\r\n\r\n" % len(EVENTLIST)) + EVENTLIST)
        status, headers, answer = await read_answer_and_headers(reader, PROMPTLY_S)
        writer.close()
    finally:
        await receiver.stop()
    assert status == 500 and headers["content-type"] == "application/json; charset=utf-8"
    assert orjson.loads(answer) == {"reason": "Internal Server Error (the webhook's log has it)"}
