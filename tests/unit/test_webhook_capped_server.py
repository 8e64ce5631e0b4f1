"""The connection cap on the real receiver (a loopback port, real sockets): connections past
--max-connections are reset as soon as they are accepted and counted, while those under it are
served as before; a slot freed is taken again. Without the cap, every slow client held a
descriptor until the read timeout, and enough of them ran the process out."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pipeline import metrics
from pipeline.webhook.open_files import default_max_connections, open_files_limit
from webhook_serving import loopback_settings, post_bytes, read_answer, self_signed, serving, trusting, until

ACCEPTED = b'{"accepted": 2, "trimmed": 0, "dropped": 0}'


def _refused() -> float:
    return metrics.WEBHOOK_CONNECTIONS_REFUSED._value.get()


async def _served_and_held(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that posted once and got its 200 (so the server holds it), kept open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post_bytes())
    assert await read_answer(reader) == (200, ACCEPTED)
    return reader, writer


async def _outcome(port: int, release: asyncio.Event) -> str:
    """Post on a new connection: "served" (200, the connection then held until ``release``) or
    "reset" (connection reset by peer, before any answer)."""
    try:  # the reset may come before the connect is seen through, or after the request is sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post_bytes())
        await writer.drain()
        answer = await read_answer(reader)
    except ConnectionResetError:
        return "reset"
    except asyncio.IncompleteReadError as error:
        raise AssertionError(f"closed without a reset or an answer (after {error.partial!r})") from None
    assert answer == (200, ACCEPTED)
    await release.wait()
    writer.close()
    return "served"


async def test_connections_past_the_cap_are_reset_and_counted_and_the_rest_served():
    refused = _refused()
    release = asyncio.Event()
    async with serving(loopback_settings(max_connections=3, read_timeout_s=30.0)) as receiver:
        outcomes = [asyncio.ensure_future(_outcome(receiver.port, release)) for _ in range(20)]
        # the three served hold their connections until every one of the 20 has its outcome
        await until(lambda: sum(o.done() for o in outcomes) == 17, "17 of 20 connections reset")
        release.set()
        results = await asyncio.gather(*outcomes)
        assert sorted(results) == ["reset"] * 17 + ["served"] * 3
        assert _refused() == refused + 17
        assert receiver.connections.open <= 3
        assert len(receiver.producer.sent) == 3 * 2
        async with aiohttp.ClientSession() as session:  # and it still serves once they are gone
            async with session.post(receiver.url, data=b'{"kind":"Event","apiVersion":"audit.k8s.io/v1"}') as response:
                assert response.status == 200


async def test_held_connections_are_still_served_at_the_cap_and_a_freed_slot_is_taken_again():
    async with serving(loopback_settings(max_connections=2, read_timeout_s=30.0)) as receiver:
        first, second = await _served_and_held(receiver.port), await _served_and_held(receiver.port)
        assert receiver.connections.open == 2 and metrics.REGISTRY.get_sample_value("peregrine_webhook_open_connections") == 2
        refused = _refused()
        assert await _outcome(receiver.port, asyncio.Event()) == "reset"
        assert _refused() == refused + 1
        first[1].write(post_bytes())  # the connections under the cap go on being served
        assert await read_answer(first[0]) == (200, ACCEPTED)
        second[1].write_eof()  # the client is done: the server closes its end, and frees the slot first
        assert await asyncio.wait_for(second[0].read(), 20) == b""
        assert receiver.connections.open == 1
        release = asyncio.Event()
        release.set()
        assert await _outcome(receiver.port, release) == "served"
        first[1].close()
        second[1].close()


async def test_a_tls_handshake_holds_a_slot(tmp_path):
    """Counted from the accept: a client that opens a connection and never starts its TLS
    handshake holds a descriptor (for asyncio's handshake timeout) as much as any other."""
    cert, key = self_signed(tmp_path)
    settings = loopback_settings(max_connections=1, read_timeout_s=30.0, tls_cert=cert, tls_key=key)
    async with serving(settings) as receiver:
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", receiver.port)  # no ClientHello
        await until(lambda: receiver.connections.open == 1, "the silent connection accepted")
        refused = _refused()
        with pytest.raises(ConnectionResetError):  # reset before the handshake: no TLS spent on it
            await asyncio.open_connection("127.0.0.1", receiver.port, ssl=trusting(cert))
        assert _refused() == refused + 1
        silent.close()
        await until(lambda: receiver.connections.open == 0, "the silent connection's slot given back")
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port, ssl=trusting(cert))
        writer.write(post_bytes())
        assert await read_answer(reader) == (200, ACCEPTED)
        writer.close()


async def test_without_a_setting_the_cap_is_what_the_open_files_limit_leaves_room_for():
    async with serving(loopback_settings()) as receiver:
        assert receiver.connections.limit == default_max_connections(open_files_limit())
        assert metrics.WEBHOOK_MAX_CONNECTIONS._value.get() == receiver.connections.limit


async def test_a_tls_client_that_never_completes_its_handshake_is_closed_at_the_read_timeout(tmp_path):
    """asyncio's default handshake timeout is 60 s: a client that connects and sends no ClientHello
    held its descriptor, and a slot of the cap, that long whatever the read timeout said."""
    cert, key = self_signed(tmp_path)
    settings = loopback_settings(max_connections=1, read_timeout_s=0.5, tls_cert=cert, tls_key=key)
    async with serving(settings) as receiver:
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", receiver.port)  # no ClientHello
        await until(lambda: receiver.connections.open == 1, "the silent connection accepted")
        # the server's close is seen as the end of the stream (far before asyncio's 60 s)
        assert await asyncio.wait_for(silent_reader.read(), 20) == b""
        await until(lambda: receiver.connections.open == 0, "the silent connection's slot given back")
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port, ssl=trusting(cert))
        writer.write(post_bytes())
        assert await read_answer(reader) == (200, ACCEPTED)
        writer.close()
        silent.close()
