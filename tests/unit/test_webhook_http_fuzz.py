"""No request stops the audit webhook or is answered without a reason: the real receiver on a
loopback port is posted any bytes, JSON of any shape, EventLists whose items have fields of
the wrong types or nested a thousand deep, bodies over the limit (with and without a
Content-Length), any Content-Type, and heads aiohttp refuses. Each answer is the module's
contract (pipeline/webhook/server.py): 200 with what was accepted, trimmed and dropped, or 400,
411 or 413 with a ``reason``, always JSON; never a 500. After each, a real EventList is still
accepted."""

from __future__ import annotations

import asyncio
import gzip
import json

import aiohttp
import pytest
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batch_fuzz import default_recursion_limit
from webhook_serving import EVENTLIST, loopback_settings, read_answer_and_headers, serving

MAX_BODY_BYTES = 64_000
MAX_EVENT_BYTES = 4_000
BOMB = gzip.compress(b"0" * 16_000_000)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10), st.sampled_from(["audit.k8s.io/v1", "EventList", "Event", "kube-system", "\ud800"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
DEEP = {"@deep-list@": b"[" * 1000 + b"]" * 1000, "@deep-object@": b'{"a":' * 1000 + b"1" + b"}" * 1000,
        "@too-deep@": b"[" * 1100 + b"]" * 1100, "@big@": b'"' + b"x" * 20_000 + b'"'}
FIELDS = ["auditID", "objectRef", "verb", "user", "annotations", "requestObject", "responseObject", "stageTimestamp", "kind", "apiVersion"]


@st.composite
def events(draw) -> dict:
    event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "verb": "get",
             "objectRef": {"resource": "pods", "namespace": "shop", "name": "web"}}
    for _ in range(draw(st.integers(0, 4))):
        event[draw(st.sampled_from(FIELDS))] = draw(st.one_of(json_values, st.sampled_from(sorted(DEEP))))
    return event


def encode(document) -> bytes:
    """As a client would send it; the json module writes what orjson would not (a lone surrogate),
    and the markers become a thousand levels of nesting, past 1024 or a 20 KB string."""
    data = json.dumps(document).encode()
    for marker, value in DEEP.items():
        data = data.replace(json.dumps(marker).encode(), value)
    return data


bodies = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"", b"{", b"null", b"[]", b'"x"', b"\xff\xfe{}", b"{}" * 3, b"[" * 5000 + b"]" * 5000, b'{"a":1e400}',
                     b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":' + b"[" * 2000 + b"]" * 2000 + b"}",
                     b"x" * (MAX_BODY_BYTES + 1)]),
    st.builds(lambda kind, items: encode({"kind": kind, "apiVersion": "audit.k8s.io/v1", "items": items}),
              st.sampled_from(["EventList", "Event", "PodList", 3]), st.one_of(st.lists(events(), max_size=4), json_values)),
    events().map(encode),
    json_values.map(encode),
)
requests = st.tuples(bodies, st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "", "bogus"]),
                     st.booleans(),  # chunked (no Content-Length)
                     st.sampled_from([None, None, "gzip", "gzip-bomb", "not-gzip", "not-deflate"]))


async def _chunks(data: bytes):
    for start in range(0, len(data), 16_384):
        yield data[start:start + 16_384]


def _encoded(body: bytes, encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """The body as sent with a Content-Encoding: compressed, a gzip bomb (16 MB of zeros, the body
    left out), or the body itself under a name it does not have."""
    if encoding is None:
        return body, {}
    if encoding == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if encoding == "gzip-bomb":
        return BOMB, {"Content-Encoding": "gzip"}
    return body, {"Content-Encoding": encoding.removeprefix("not-")}


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, content_type: str, chunked: bool,
                encoding: str | None = None) -> tuple[int, dict]:
    data, headers = _encoded(body, encoding)
    if content_type:
        headers["Content-Type"] = content_type
    data = _chunks(data) if chunked else data
    async with session.post(url, data=data, headers=headers) as response:
        assert response.content_type == "application/json", (response.status, await response.text())
        return response.status, orjson.loads(await response.read())


def _check(status: int, answer: dict, body: bytes, encoding: str | None) -> None:
    assert status in (200, 400, 413), (status, answer, body[:200])
    if encoding == "gzip-bomb":
        assert status == 413, answer
        return
    if encoding is not None and encoding.startswith("not-") and status == 400:  # (an empty body decodes as one)
        assert answer["reason"].startswith(("body cannot be read: ", "body is not JSON")), answer
        return
    if status == 200:
        assert set(answer) == {"accepted", "trimmed", "dropped"}, answer
        try:
            events = orjson.loads(body)
        except orjson.JSONDecodeError:  # a lone surrogate: read as the receiver reads it
            events = json.loads(body.decode("utf-8", "replace"))
        count = 1 if events.get("kind") == "Event" else len(events.get("items") or [])
        assert answer["accepted"] + answer["dropped"] == count, (answer, body[:200])
    else:
        assert isinstance(answer.get("reason"), str) and answer["reason"], answer


async def _exchange(posts: list[tuple[bytes, str, bool]]) -> None:
    settings = loopback_settings(max_body_bytes=MAX_BODY_BYTES, max_event_bytes=MAX_EVENT_BYTES)
    # one session, so connections are reused: an answer that ends its connection says so
    async with serving(settings) as receiver, aiohttp.ClientSession() as session:
        for body, content_type, chunked, encoding in posts:
            status, answer = await _post(session, receiver.url, body, content_type, chunked, encoding)
            _check(status, answer, body, encoding)
            assert await _post(session, receiver.url, EVENTLIST, "application/json", False) == (200, {"accepted": 2, "trimmed": 0, "dropped": 0})


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(posts=st.lists(requests, min_size=1, max_size=4))
def test_any_post_is_answered_by_the_contract_and_the_next_one_is_served(posts):
    with default_recursion_limit():  # as the receiver runs; Hypothesis raises the limit while a test runs
        asyncio.run(_exchange(posts))


def test_an_audit_id_nested_a_thousand_deep_is_accepted_not_a_500():
    """str() of it raised RecursionError in the handler: aiohttp answered 500, which the API
    server retries, so the whole batch was refused for ever."""
    body = (b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":' + b"[" * 1000 + b"]" * 1000 + b'},'
            b'{"auditID":"b","responseObject":"' + b"x" * MAX_EVENT_BYTES + b'"}]}')

    async def exchange() -> tuple[int, dict]:
        async with serving(loopback_settings(max_event_bytes=MAX_EVENT_BYTES)) as receiver, aiohttp.ClientSession() as session:
            answer = await _post(session, receiver.url, body, "application/json", False)
            sent = receiver.producer.sent
            assert [record.audit_id for record in sent][1:] == ["b"] and sent[1].trimmed
            return answer

    with default_recursion_limit():
        assert asyncio.run(exchange()) == (200, {"accepted": 2, "trimmed": 1, "dropped": 0})


async def test_heads_aiohttp_refuses_are_answered_and_the_connection_after_them_is_served():
    settings = loopback_settings(max_body_bytes=MAX_BODY_BYTES)
    async with serving(settings) as receiver:
        for head in [b"POST /k8s-audit HTTP/1.1\r\nHost: w\r\nContent-Length: abc\r\n\r\n",
                     b"POST /k8s-audit HTTP/1.1\r\nHost: w\r\nContent-Length: -5\r\n\r\n",
                     b"POST /k8s-audit HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     b"POST /k8s-audit HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x00\x05hello\r\n\r\n"]:
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            writer.write(head)
            await writer.drain()
            status, headers, answer = await read_answer_and_headers(reader)
            assert status == 400 and headers["content-type"] == "application/json; charset=utf-8", (head, status, answer)
            assert orjson.loads(answer)["reason"].startswith("request cannot be read: "), (head, answer)
            writer.close()
        async with aiohttp.ClientSession() as session:
            assert (await _post(session, receiver.url, EVENTLIST, "application/json", False))[0] == 200


@pytest.mark.parametrize("field, reason", [("kind", "kind is a JSON array, not EventList or Event"),
                                           ("apiVersion", "apiVersion is a JSON object, not audit.k8s.io/v1")])
def test_a_kind_or_api_version_nested_a_thousand_deep_is_a_400_with_its_reason(field, reason):
    """The 400's reason quoted the value with repr(), which raised RecursionError: a 500."""
    document = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", field: "@deep-list@" if field == "kind" else "@deep-object@"}

    async def exchange() -> tuple[int, dict]:
        async with serving(loopback_settings()) as receiver, aiohttp.ClientSession() as session:
            answer = await _post(session, receiver.url, encode(document), "application/json", False)
            assert (await _post(session, receiver.url, EVENTLIST, "application/json", False))[0] == 200
            return answer

    with default_recursion_limit():
        status, answer = asyncio.run(exchange())
    assert status == 400 and answer["reason"].startswith(reason)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400_not_a_500(encoding):
    """aiohttp raises from read() for such a body: the handler answered 500, which the API server
    retries with the same body."""
    async def exchange() -> tuple[int, dict]:
        async with serving(loopback_settings()) as receiver, aiohttp.ClientSession() as session:
            answer = await _post(session, receiver.url, EVENTLIST, "application/json", False, f"not-{encoding}")
            assert await _post(session, receiver.url, EVENTLIST, "application/json", False, "gzip") == (
                200, {"accepted": 2, "trimmed": 0, "dropped": 0})
            return answer

    assert asyncio.run(exchange()) == (400, {"reason": f"body cannot be read: Can not decode content-encoding: {encoding}"})
