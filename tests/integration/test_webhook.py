"""`peregrine webhook` on the real stack: EventLists posted as the API server posts them,
read back from Kafka; tokens, TLS, limits, malformed bodies, Kafka refusing, bad startup."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import uuid
from collections import defaultdict

import aiohttp
import orjson
import pytest

from pipeline.webhook.eventlist import CLUSTER_KEY
from webhook_process import (PEREGRINE, ROOT, WebhookProcess, certificate_authority, client_certificate, eventlist, fixture_events,
                             free_port, numbered, read_records)


@pytest.fixture
def webhooks(stack, tmp_path):
    started: list[WebhookProcess] = []

    async def start(topic: str, **options) -> WebhookProcess:
        process = WebhookProcess(stack.bootstrap_servers, topic, tmp_path / f"webhook-{len(started)}", **options)
        started.append(process)
        return await process.start()

    yield start
    for process in started:
        process.stop()


def _expected_key(event: dict) -> bytes:
    namespace = (event.get("objectRef") or {}).get("namespace")
    return namespace.encode() if namespace else CLUSTER_KEY


def _as_produced(event: dict, api_version: str = "audit.k8s.io/v1") -> dict:
    bare = {k: v for k, v in event.items() if k not in ("kind", "apiVersion")}
    return {**bare, "kind": "Event", "apiVersion": api_version}


async def test_eventlists_go_to_kafka_one_event_a_record_keyed_by_namespace_in_order(webhooks, topic_factory, bootstrap_servers):
    topic = await topic_factory(3, prefix="pg-audit")
    hook = await webhooks(topic, token="t0k3n-" + uuid.uuid4().hex)
    events = numbered(fixture_events(), 100, "order")
    posts = [events[i:i + 25] for i in range(0, 100, 25)]
    for items in posts:
        status, body = await hook.post(eventlist(items), token=hook.token)
        assert (status, body) == (200, {"accepted": 25, "trimmed": 0, "dropped": 0}), hook.log_text()
    single = fixture_events()[0] | {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "single"}
    assert (await hook.post(orjson.dumps(single), token=hook.token))[0] == 200  # an Event alone, as Falco takes it

    records = await read_records(bootstrap_servers, topic, expect=101)
    assert len(records) == 101
    keys = {_expected_key(e) for e in events}
    assert {b"shop", b"kube-system", CLUSTER_KEY} <= keys
    assert {r.key for r in records} == keys
    by_key: dict[bytes, list] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record)
    for key, keyed in by_key.items():
        assert len({r.partition for r in keyed}) == 1, key  # one namespace, one partition
        expected = [e["auditID"] for e in events if _expected_key(e) == key] + (["single"] if key == _expected_key(single) else [])
        assert [orjson.loads(r.value)["auditID"] for r in keyed] == expected, key  # in the order posted
    values = {orjson.loads(r.value)["auditID"]: orjson.loads(r.value) for r in records}
    assert all(values[e["auditID"]] == _as_produced(e) for e in events)
    assert values["single"] == single


async def test_rejected_requests_produce_nothing_and_say_why(webhooks, topic_factory, bootstrap_servers):
    topic = await topic_factory(1, prefix="pg-audit")
    hook = await webhooks(topic, token="right-token", args=["--max-body-bytes", "4096"])
    good = eventlist(fixture_events()[:1])
    assert len(good) < 4096

    assert await hook.post(good) == (401, {"reason": "missing or wrong bearer token"})
    assert (await hook.post(good, token="wrong-token"))[0] == 401
    assert (await hook.post(good, Authorization="Basic cmlnaHQtdG9rZW4="))[0] == 401

    malformed = {
        b"{\"kind\": \"EventList\", ": "body is not JSON",
        b"[]": "body is a JSON array, not an audit.k8s.io EventList or Event object",
        b'{"kind": "PodList", "apiVersion": "v1", "items": []}': "apiVersion is 'v1', not audit.k8s.io/v1",
        b'{"kind": "Status", "apiVersion": "audit.k8s.io/v1"}': "kind is 'Status', not EventList or Event",
        b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{"auditID": "x"}, 7]}':
            "items[1] is a JSON number, not an event object",
    }
    for body, reason in malformed.items():
        status, answer = await hook.post(body, token="right-token")
        assert status == 400 and answer["reason"].startswith(reason), (body, answer)

    big = eventlist(numbered(fixture_events(), 20, "big"))
    assert len(big) > 4096
    assert (await hook.post(big, token="right-token"))[0] == 413

    async def chunks():  # no Content-Length: the server counts as it reads
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    async with aiohttp.ClientSession() as session:
        async with session.post(hook.url, data=chunks(), headers={"Authorization": "Bearer right-token"}) as response:
            assert response.status == 413 and "Content-Length" not in response.request_info.headers

    assert await hook.post(good, token="right-token") == (200, {"accepted": 1, "trimmed": 0, "dropped": 0})
    records = await read_records(bootstrap_servers, topic, expect=1, settle=2.0)
    assert [orjson.loads(r.value)["auditID"] for r in records] == [fixture_events()[0]["auditID"]]

    async with aiohttp.ClientSession() as session:
        async with session.get(hook.base + "/metrics") as response:
            exposition = await response.text()
    for line in ('peregrine_webhook_requests_total{code="401"} 3.0', 'peregrine_webhook_requests_total{code="400"} 5.0',
                 'peregrine_webhook_requests_total{code="413"} 2.0', 'peregrine_webhook_requests_total{code="200"} 1.0',
                 "peregrine_webhook_events_total 1.0"):
        assert line in exposition


async def test_tls_with_a_self_signed_certificate(webhooks, topic_factory, bootstrap_servers):
    topic = await topic_factory(1, prefix="pg-audit")
    hook = await webhooks(topic, token="tls-token", tls=True)
    events = numbered(fixture_events(), 12, "tls")
    assert await hook.post(eventlist(events), token="tls-token") == (200, {"accepted": 12, "trimmed": 0, "dropped": 0})
    assert (await hook.post(eventlist(events), token="nope"))[0] == 401
    records = await read_records(bootstrap_servers, topic, expect=12)
    assert [orjson.loads(r.value)["auditID"] for r in records] == [e["auditID"] for e in events]
    with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port gets no answer
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{hook.port}/k8s-audit", data=eventlist(events)) as response:
                await response.read()
    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # and the certificate is checked by clients
        async with aiohttp.ClientSession() as session:
            async with session.get(hook.base + "/healthz") as response:
                await response.read()


async def test_mutual_tls_takes_posts_only_with_a_client_certificate_the_ca_signed(webhooks, topic_factory, bootstrap_servers,
                                                                                      tmp_path):
    """--client-ca: the API server's client certificate (its audit webhook kubeconfig) is the
    credential; one from another CA fails the handshake, none gets 401, and the probes, which
    send none, still get their answers."""
    topic = await topic_factory(1, prefix="pg-audit")
    ca = certificate_authority(tmp_path / "pki", "audit-ca")
    apiserver = client_certificate(tmp_path / "pki", "kube-apiserver", ca)
    rogue = client_certificate(tmp_path / "pki", "rogue", certificate_authority(tmp_path / "pki", "rogue-ca"))
    hook = await webhooks(topic, tls=True, args=["--client-ca", str(ca[0])])
    events = numbered(fixture_events(), 5, "mtls")
    assert await hook.post(eventlist(events), client=apiserver) == (200, {"accepted": 5, "trimmed": 0, "dropped": 0})
    assert await hook.post(eventlist(events)) == (401, {"reason": "a client certificate signed by the webhook's --client-ca is required"})
    with pytest.raises(aiohttp.ClientError):  # the handshake refuses a certificate the CA did not sign
        await hook.post(eventlist(events), client=rogue)
    assert (await hook.get("/healthz"))[0] == 200 and (await hook.get("/readyz"))[0] == 200
    records = await read_records(bootstrap_servers, topic, expect=5)
    assert [orjson.loads(r.value)["auditID"] for r in records] == [e["auditID"] for e in events]


async def test_an_oversized_event_is_trimmed_and_still_produced(webhooks, topic_factory, bootstrap_servers):
    topic = await topic_factory(1, prefix="pg-audit")
    hook = await webhooks(topic, env={"PEREGRINE_WEBHOOK_MAX_EVENT_BYTES": "20000"})
    event = fixture_events()[0] | {"auditID": "huge", "responseObject": {"data": {"blob": "x" * 50_000}}}
    assert await hook.post(eventlist([event])) == (200, {"accepted": 1, "trimmed": 1, "dropped": 0})
    [record] = await read_records(bootstrap_servers, topic, expect=1)
    produced = orjson.loads(record.value)
    assert "responseObject" not in produced and produced["requestObject"] == event["requestObject"]
    assert produced["annotations"]["peregrine.dev/trimmed"] == "responseObject"


async def _create_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def _wait_until_gone(bootstrap: str, topic: str, timeout: float = 60.0) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while topic in await admin.list_topics():
            assert loop.time() < deadline, f"{topic} still listed {timeout}s after its deletion"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_503_while_kafka_refuses_then_200(webhooks, bootstrap_servers):
    from pipeline.stack.provision import delete_topics, ensure_topics
    from pipeline.stack.settings import TopicSpec

    topic = f"pg-audit.refuses.{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap_servers, topic, {"max.message.bytes": "4000"})
    await ensure_topics(bootstrap_servers, [TopicSpec(topic, 1)])  # waits for the leader
    try:
        hook = await webhooks(topic, env={"PEREGRINE_WEBHOOK_PRODUCE_TIMEOUT_S": "5"})
        # random, so that it stays above the topic's limit once the producer has compressed it
        large = fixture_events()[0] | {"auditID": "large", "requestObject": {"data": {"blob": secrets.token_urlsafe(12_000)}}}
        status, answer = await hook.post(eventlist([large]))
        assert status == 503 and answer["reason"].startswith("Kafka refused the events"), answer
        small = fixture_events()[1] | {"auditID": "small"}
        assert (await hook.post(eventlist([small])))[0] == 200
        assert await hook.get("/readyz") == (200, {"status": "ready", "topic": topic})
        # the topic goes away: nothing can be acked, the API server is told to retry
        await delete_topics(bootstrap_servers, [topic])
        await _wait_until_gone(bootstrap_servers, topic)
        status, answer = await hook.post(eventlist([small | {"auditID": "while-gone"}]))
        assert status == 503, answer
        # not ready (the Service stops sending it requests), still alive (no restart)
        assert await hook.get("/readyz") == (503, {"status": "unready", "topic": topic,
                                                   "reason": f"Kafka topic {topic} is missing on {bootstrap_servers}"})
        assert (await hook.get("/healthz"))[0] == 200
        await ensure_topics(bootstrap_servers, [TopicSpec(topic, 1)])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while (status := (await hook.post(eventlist([small | {"auditID": "back"}])))[0]) != 200 and loop.time() < deadline:
            assert status == 503
            await asyncio.sleep(1)
        assert status == 200, hook.log_text()
        # ready again within the second the last answer is kept for (probes share it)
        deadline = loop.time() + 5
        while (await hook.get("/readyz"))[0] != 200 and loop.time() < deadline:
            await asyncio.sleep(0.2)
        assert (await hook.get("/readyz"))[0] == 200
        records = await read_records(bootstrap_servers, topic, expect=1, settle=2.0)
        # at least once: a batch answered 503 may still have reached Kafka, never one refused for good
        assert {orjson.loads(r.value)["auditID"] for r in records} - {"while-gone"} == {"back"}
    finally:
        await delete_topics(bootstrap_servers, [topic])


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([PEREGRINE, "webhook", *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=180, cwd=str(ROOT))


def test_startup_failures_are_one_line(stack, tmp_path):
    env = {"PEREGRINE_KAFKA_BOOTSTRAP": stack.bootstrap_servers, "PEREGRINE_WEBHOOK_STARTUP_TIMEOUT_S": "10"}
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(["--listen", f"127.0.0.1:{port}"], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]

    done = _run(["--listen", "127.0.0.1:0"], env | {"PEREGRINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "refused the connection" in done.stderr

    done = _run(["--listen", "127.0.0.1:0"], env | {"PEREGRINE_K8S_AUDIT_TOPIC": "pg-no-such-topic"})
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: Kafka topic pg-no-such-topic is missing on {stack.bootstrap_servers}; create it with "
        "`peregrine stack provision` or fix PEREGRINE_K8S_AUDIT_TOPIC"]

    done = _run(["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(tmp_path / "missing.key")], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "no such file" in done.stderr


async def test_connections_past_the_cap_are_reset_counted_and_said_at_startup(webhooks, topic_factory, bootstrap_servers):
    """--max-connections 3 on the real command: twelve clients post at once, and those it serves
    keep their connections; the others are reset (which the API server retries) and counted, and
    the start-up line says what the cap is. At most three are served (fewer while the start-up
    probe's connection is still being closed)."""
    topic = await topic_factory(1, prefix="pg-audit")
    hook = await webhooks(topic, args=["--max-connections", "3"])
    assert "at most 3 connections open" in hook.log_text(), hook.log_text()
    release = asyncio.Event()
    holding: list[int] = []

    async def post_and_hold(n: int) -> str:
        body = eventlist(numbered(fixture_events(), 2, f"cap-{n}"))
        try:  # the reset may come at the request's sending or at the answer's reading
            reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
            writer.write(b"POST /k8s-audit HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
        except ConnectionResetError:
            return "reset"
        assert status_line == b"HTTP/1.1 200 OK\r\n"
        holding.append(n)
        await release.wait()
        writer.write_eof()  # done: the server closes its end, and frees the slot before it does
        await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return "served"

    outcomes = [asyncio.ensure_future(post_and_hold(n)) for n in range(12)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while sum(o.done() for o in outcomes) + len(holding) < 12:  # each reset, or served and holding on
        assert loop.time() < deadline, hook.log_text()
        await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(*outcomes)
    served = results.count("served")
    assert 1 <= served <= 3 and results.count("reset") == 12 - served, (results, hook.log_text())
    records = await read_records(bootstrap_servers, topic, expect=2 * served, settle=2.0)
    assert {orjson.loads(r.value)["auditID"].rsplit("-", 1)[0] for r in records} == {f"cap-{n}" for n in holding}

    async with aiohttp.ClientSession() as session:
        async with session.get(hook.base + "/metrics") as response:
            exposition = await response.text()
    for line in (f"peregrine_webhook_connections_refused_total {12 - served}.0", "peregrine_webhook_max_connections 3.0",
                 "peregrine_webhook_stalled_heads_total 0.0"):
        assert line in exposition, exposition
    assert "new connection(s): 3 are open, the cap (--max-connections" in hook.log_text()


async def test_a_cap_beyond_what_the_open_files_limit_leaves_room_for_is_warned_about(webhooks, topic_factory):
    topic = await topic_factory(1, prefix="pg-audit")
    hook = await webhooks(topic, env={"PEREGRINE_WEBHOOK_MAX_CONNECTIONS": "1000000000"})
    log = hook.log_text()
    assert "at most 1000000000 connections open" in log, log
    assert "a connection cap of 1000000000 (--max-connections or PEREGRINE_WEBHOOK_MAX_CONNECTIONS) leaves fewer than" in log, log
    assert "raise the hard limit (ulimit -Hn)" in log, log
    assert (await hook.get("/healthz"))[0] == 200
