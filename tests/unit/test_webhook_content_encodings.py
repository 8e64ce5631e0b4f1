"""A body in a Content-Encoding the webhook does not decode gets a JSON 415 that names the
codings it does (gzip, deflate, identity), with Accept-Encoding (RFC 9110, 15.5.16); never a
500, which the API server retries for ever. br and zstd got aiohttp's own text/plain 400 (it
refuses them as it reads the head, having no decoder installed for them), and a coding aiohttp
does not know was handed to the handler still encoded. The real receiver on a loopback port."""

from __future__ import annotations

import gzip
import zlib

import aiohttp
import pytest

from pipeline import metrics
from webhook_serving import EVENTLIST, loopback_settings, serving

ACCEPTED = {"accepted": 2, "trimmed": 0, "dropped": 0}


async def _post(url: str, body: bytes, content_encoding: str) -> tuple[int, dict[str, str], dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers={"Content-Encoding": content_encoding,
                                                         "Content-Type": "application/json"}) as response:
            assert response.content_type == "application/json", (response.status, await response.text())
            return response.status, dict(response.headers), await response.json()


@pytest.mark.parametrize("content_encoding", ["br", "zstd", "compress", "x-gzip", "gzip, gzip", "gzip, br"])
async def test_a_coding_the_webhook_does_not_decode_is_a_json_415_naming_those_it_does(content_encoding):
    refused = metrics.WEBHOOK_REQUESTS.labels("415")._value.get()
    async with serving(loopback_settings()) as receiver:
        status, headers, answer = await _post(receiver.url, EVENTLIST, content_encoding)
        assert status == 415, answer
        assert answer["reason"].endswith("is not one the webhook decodes: send gzip, deflate or identity"), answer
        assert headers["Accept-Encoding"] == "gzip, deflate, identity"
        assert receiver.producer.sent == []
        assert (await _post(receiver.url, EVENTLIST, "identity"))[::2] == (200, ACCEPTED)
    assert metrics.WEBHOOK_REQUESTS.labels("415")._value.get() == refused + 1


@pytest.mark.parametrize("content_encoding, encode", [("identity", bytes), ("", bytes), ("GZIP", gzip.compress),
                                                     ("deflate", zlib.compress)])
async def test_the_codings_the_webhook_decodes_are_read(content_encoding, encode):
    async with serving(loopback_settings()) as receiver:
        assert (await _post(receiver.url, encode(EVENTLIST), content_encoding))[::2] == (200, ACCEPTED)
