"""The audit webhook's request handling without a server: bodies, keys, trimming, token, settings."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from pipeline.errors import ConfigError
from pipeline.cli.replay import key_of
from pipeline.ingest.keys import CLUSTER_KEY, audit_key
from pipeline.webhook.eventlist import TRIMMED_ANNOTATION, BadAuditBody, parse_body, to_batch
from pipeline.webhook.settings import Listen, WebhookSettings
from pipeline.webhook.token import BearerToken

ROOT = Path(__file__).resolve().parents[2]
EVENTLIST = ROOT / "tests" / "data" / "events" / "k8s_audit_eventlist.json"
SINGLE = ROOT / "tests" / "data" / "k8s_audit" / "privileged_pod_create.json"


def test_an_eventlist_gives_its_items_in_order_with_kind_and_api_version():
    body = EVENTLIST.read_bytes()
    events = parse_body(body)
    expected = json.loads(body)["items"]
    assert [e["auditID"] for e in events] == [e["auditID"] for e in expected]
    assert all(e["kind"] == "Event" and e["apiVersion"] == "audit.k8s.io/v1" for e in events)
    assert events[0]["objectRef"] == expected[0]["objectRef"]


def test_a_single_event_is_accepted_as_falco_does():
    events = parse_body(SINGLE.read_bytes())
    assert len(events) == 1 and events[0]["auditID"] == "a1"


def test_item_api_version_is_kept_and_empty_lists_are_fine():
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                         "items": [{"apiVersion": "audit.k8s.io/v1beta1", "auditID": "x"}]})
    assert parse_body(body)[0]["apiVersion"] == "audit.k8s.io/v1beta1"
    assert parse_body(b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":null}') == []
    assert parse_body(b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}') == []


@pytest.mark.parametrize("body, reason", [
    (b"", "body is not JSON"),
    (b"{not json", "body is not JSON"),
    (b"[1, 2]", "body is a JSON array, not an audit.k8s.io EventList or Event object"),
    (b'"EventList"', "body is a JSON string"),
    (b'{"kind": "EventList", "items": []}', "apiVersion is None, not audit.k8s.io/v1"),
    (b'{"kind": "PodList", "apiVersion": "v1", "items": []}', "apiVersion is 'v1', not audit.k8s.io/v1"),
    (b'{"kind": "Policy", "apiVersion": "audit.k8s.io/v1"}', "kind is 'Policy', not EventList or Event"),
    (b'{"apiVersion": "audit.k8s.io/v1", "items": []}', "kind is None, not EventList or Event"),
    (b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {"a": 1}}', "items is a JSON object, not an array of events"),
    (b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{}, "x"]}', "items[1] is a JSON string, not an event object"),
    (b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [null]}', "items[0] is a JSON null, not an event object"),
])
def test_malformed_bodies_have_a_reason(body, reason):
    with pytest.raises(BadAuditBody) as caught:
        parse_body(body)
    assert str(caught.value).startswith(reason)


def test_keys_are_the_namespace_or_the_cluster_key():
    assert audit_key({"objectRef": {"resource": "pods", "namespace": "shop"}}) == b"shop"
    assert audit_key({"objectRef": {"resource": "clusterrolebindings", "name": "x"}}) == CLUSTER_KEY
    assert audit_key({"objectRef": {"resource": "namespaces", "namespace": ""}}) == CLUSTER_KEY
    assert audit_key({"requestURI": "/healthz"}) == CLUSTER_KEY
    assert audit_key({"objectRef": "shop"}) == CLUSTER_KEY
    assert audit_key({"objectRef": {"namespace": 7}}) == CLUSTER_KEY


def test_records_keep_order_values_and_keys():
    events = parse_body(EVENTLIST.read_bytes())
    batch = to_batch(events, 1_000_000)
    assert [orjson.loads(r.value) for r in batch.records] == events
    assert [r.key for r in batch.records] == [b"shop"] * 5 + [b"kube-system"]
    assert batch.dropped == () and not any(r.trimmed for r in batch.records)


def _big_event(request_size: int, response_size: int) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "big", "stage": "ResponseComplete",
            "verb": "update", "objectRef": {"resource": "configmaps", "namespace": "ns", "name": "c"},
            "annotations": {"authorization.k8s.io/decision": "allow"},
            "requestObject": {"data": {"k": "r" * request_size}}, "responseObject": {"data": {"k": "s" * response_size}}}


def test_an_oversized_event_loses_its_response_then_its_request_object():
    batch = to_batch([_big_event(100, 5000)], 2000)
    record = orjson.loads(batch.records[0].value)
    assert batch.records[0].trimmed and "responseObject" not in record and record["requestObject"]["data"]["k"] == "r" * 100
    assert record["annotations"] == {"authorization.k8s.io/decision": "allow", TRIMMED_ANNOTATION: "responseObject"}
    both = orjson.loads(to_batch([_big_event(5000, 5000)], 2000).records[0].value)
    assert "requestObject" not in both and both["annotations"][TRIMMED_ANNOTATION] == "responseObject,requestObject"
    assert both["verb"] == "update" and both["objectRef"]["name"] == "c"


def test_an_event_too_large_even_trimmed_is_dropped_and_the_rest_kept():
    huge = _big_event(10, 10) | {"user": {"username": "u" * 5000}}
    small = {"auditID": "s", "objectRef": {"namespace": "a"}}
    batch = to_batch([small, huge, small], 2000)
    assert [r.audit_id for r in batch.records] == ["s", "s"]
    assert [d.audit_id for d in batch.dropped] == ["big"] and batch.dropped[0].size > 5000


def test_bearer_token_checks(tmp_path):
    token = BearerToken("s3cret")
    assert token.required
    assert token.accepts("Bearer s3cret") and token.accepts("bearer s3cret")
    for bad in (None, "", "Bearer", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"):
        assert not token.accepts(bad), bad
    assert BearerToken().accepts(None) and not BearerToken().required


def test_token_file_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "token"
    path.write_text("first\n")
    token = BearerToken(path=path)
    assert token.accepts("Bearer first")
    path.write_text("second-token\n")
    assert token.accepts("Bearer second-token") and not token.accepts("Bearer first")
    path.unlink()  # a Secret being swapped: the last good token stays
    assert token.accepts("Bearer second-token")


def test_token_file_problems_are_config_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        BearerToken(path=empty)
    with pytest.raises(ConfigError, match="missing"):
        BearerToken(path=tmp_path / "missing")


@pytest.mark.parametrize("text, host, port", [
    (":9765", "0.0.0.0", 9765), ("127.0.0.1:8443", "127.0.0.1", 8443), ("[::1]:9765", "::1", 9765), ("localhost:0", "localhost", 0),
])
def test_listen_addresses(text, host, port):
    assert Listen.parse(text) == Listen(host, port)


@pytest.mark.parametrize("text", ["9765", "host:", "host:http", ":70000", ""])
def test_bad_listen_addresses(text):
    with pytest.raises(ConfigError, match="--listen"):
        Listen.parse(text)


def test_settings_from_env_and_flags(tmp_path):
    env = {"PEREGRINE_KAFKA_BOOTSTRAP": "kafka:9092", "PEREGRINE_K8S_AUDIT_TOPIC": "audit",
           "PEREGRINE_WEBHOOK_LISTEN": ":8443", "PEREGRINE_WEBHOOK_MAX_BODY_BYTES": "1000", "PEREGRINE_WEBHOOK_TOKEN": "t"}
    settings = WebhookSettings.from_env(env)
    assert (settings.broker, settings.topic, settings.listen, settings.max_body_bytes, settings.token) == \
        ("kafka:9092", "audit", Listen("0.0.0.0", 8443), 1000, "t")
    assert settings.path == "/k8s-audit" and not settings.tls
    flagged = WebhookSettings.from_env(env, listen="127.0.0.1:1", max_body_bytes=5)
    assert (flagged.listen, flagged.max_body_bytes) == (Listen("127.0.0.1", 1), 5)
    defaults = WebhookSettings.from_env({})
    assert defaults.listen == Listen("0.0.0.0", 9765) and defaults.token is None and defaults.max_body_bytes == 32 * 1024 * 1024


def test_settings_errors(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="go together"):
        WebhookSettings.from_env({}, tls_cert=cert)
    with pytest.raises(ConfigError, match="no such file"):
        WebhookSettings.from_env({}, tls_cert=cert, tls_key=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="not both"):
        WebhookSettings.from_env({"PEREGRINE_WEBHOOK_TOKEN": "t"}, token_file=cert)
    with pytest.raises(ConfigError, match="not a whole number"):
        WebhookSettings.from_env({"PEREGRINE_WEBHOOK_MAX_BODY_BYTES": "lots"})
    for value in ("0", "nan", "inf"):  # nan and inf passed the old "above 0" check
        with pytest.raises(ConfigError, match="PEREGRINE_WEBHOOK_PRODUCE_TIMEOUT_S must be a positive number of seconds"):
            WebhookSettings.from_env({"PEREGRINE_WEBHOOK_PRODUCE_TIMEOUT_S": value})


def test_client_ca_settings_and_their_errors(tmp_path):
    from pipeline.webhook.server import tls_context

    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    for path in (cert, key, ca):
        path.write_text("x")
    with pytest.raises(ConfigError, match="--client-ca needs --tls-cert and --tls-key"):
        WebhookSettings.from_env({}, client_ca=ca)
    with pytest.raises(ConfigError, match="--client-ca .*nope.pem: no such file"):
        WebhookSettings.from_env({}, tls_cert=cert, tls_key=key, client_ca=tmp_path / "nope.pem")
    settings = WebhookSettings.from_env({"PEREGRINE_WEBHOOK_CLIENT_CA": str(ca)}, tls_cert=cert, tls_key=key)
    assert settings.client_ca == ca
    with pytest.raises(ConfigError, match="cannot load --tls-cert"):  # "x" is no certificate
        tls_context(settings)


def test_a_client_ca_that_is_no_certificate_is_a_config_error(tmp_path):
    import subprocess

    from pipeline.webhook.server import tls_context

    cert, key, ca = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ca.write_text("not a certificate\n")
    settings = WebhookSettings.from_env({}, tls_cert=cert, tls_key=key, client_ca=ca)
    with pytest.raises(ConfigError, match=f"cannot load --client-ca {ca}"):
        tls_context(settings)
    ca.write_bytes(cert.read_bytes())  # any real CA certificate will do
    assert tls_context(settings).verify_mode.name == "CERT_OPTIONAL"


def test_one_event_orjson_refuses_does_not_cost_the_batch():
    """kube-apiserver copies a PATCH body into requestObject as it came; Go lets through a lone
    surrogate escape, bytes that are not UTF-8 and 1e400. Each made the whole EventList a 400,
    which the API server never retries."""
    body = (b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"good"},'
            b'{"auditID":"x","requestObject":{"a":"\\ud800","n":1e400}},{"auditID":"y","requestObject":"\xff\xfe"}]}')
    events = parse_body(body)
    assert [e["auditID"] for e in events] == ["good", "x", "y"]
    values = [orjson.loads(record.value) for record in to_batch(events, 1 << 20).records]
    assert values[0] == {"auditID": "good", "kind": "Event", "apiVersion": "audit.k8s.io/v1"}
    assert values[1]["requestObject"] == {"a": "\ufffd", "n": None}
    assert values[2]["requestObject"] == "\ufffd\ufffd"
    with pytest.raises(BadAuditBody):
        parse_body(b'{"kind": "EventList", "items": [')  # still not JSON


def test_a_namespace_longer_than_kubernetes_allows_is_keyed_by_its_digest():
    """From the URL of a refused, even unauthenticated, request: a 400 KB key made the record
    too large for Kafka, and the batch a 503 at every retry until the API server dropped it."""
    key = audit_key({"objectRef": {"namespace": "a" * 400_000}})
    assert key.startswith(b"sha256:") and len(key) == 71
    assert audit_key({"objectRef": {"namespace": "n" * 253}}) == b"n" * 253


def test_a_token_header_that_is_not_utf8_is_refused_not_an_error(tmp_path):
    token = BearerToken("s3cret")
    assert not token.accepts("Bearer \udcff\udcfe")  # what aiohttp makes of the bytes \xff\xfe
    path = tmp_path / "token"
    path.write_text("good")
    from_file = BearerToken(None, path)
    assert from_file.accepts("Bearer good")
    path.write_bytes(b"\xff\xfe")  # a rotated file that is not UTF-8: the last good token holds
    assert from_file.accepts("Bearer good")


def test_concurrent_readiness_probes_ask_kafka_once_a_second():
    """Each /readyz asked Kafka for metadata on the producer's one connection: a hundred
    unauthenticated GETs made the kubelet's probes time out while Kafka was fine."""
    import asyncio

    from pipeline.webhook.server import Readiness

    class Producer:
        calls = 0

        async def ready(self):
            Producer.calls += 1
            await asyncio.sleep(0.05)
            return None

    async def probe_storm():
        readiness = Readiness(Producer(), ttl_s=1.0)
        answers = await asyncio.gather(*(readiness.problem() for _ in range(100)))
        assert answers == [None] * 100
        await readiness.problem()  # within the second: the same answer
        return Producer.calls

    assert asyncio.run(probe_storm()) == 1


def test_posts_past_the_concurrency_limit_are_told_to_retry():
    """Every post was read and held at once: a body costs 3 to 20 times its size until Kafka
    acks it, and a few large batches ran a 256Mi pod out of memory."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from pipeline.webhook.server import build_app

    class HeldProducer:
        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.sent = 0

        async def send(self, records) -> None:
            await self.release.wait()
            self.sent += len(records)

        async def ready(self):
            return None

    body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"a"}]}'

    async def scenario():
        producer = HeldProducer()
        settings = WebhookSettings(broker="unused:9092", topic="t", max_concurrent=2)
        async with TestClient(TestServer(build_app(settings, producer, BearerToken(None)))) as client:
            held = [asyncio.ensure_future(client.post(settings.path, data=body)) for _ in range(2)]
            await asyncio.sleep(0.2)  # both read and waiting on Kafka
            busy = await client.post(settings.path, data=body)
            assert busy.status == 503 and busy.headers["Retry-After"] == "1"
            assert "busy: 2 posts in flight" in (await busy.json())["reason"]
            producer.release.set()
            assert [response.status for response in await asyncio.gather(*held)] == [200, 200]
            assert (await client.post(settings.path, data=body)).status == 200  # room again
        return producer.sent

    assert asyncio.run(scenario()) == 3


def test_replay_keys_audit_events_as_the_webhook_does():
    """`peregrine replay` keyed a cluster-scoped event by its auditID, so a replayed ClusterRole's
    events went to as many partitions as it had events, and their live-audit findings were
    remembered by several workers; the webhook keys them all ``_cluster``."""
    events = [{"auditID": "a-1", "objectRef": {"resource": "clusterroles", "name": "x"}},
              {"auditID": "a-2", "objectRef": {"resource": "clusterroles", "name": "x"}},
              {"auditID": "a-3", "requestURI": "/healthz"},
              {"auditID": "a-4", "objectRef": {"resource": "pods", "namespace": "shop"}},
              {"auditID": "a-5", "objectRef": {"resource": "pods", "namespace": "n" * 300}}]
    for event in events:
        assert key_of(event, "k8s_audit") == audit_key(event) == to_batch([event], 1 << 20).records[0].key
    assert key_of(events[0], "k8s_audit") == key_of(events[1], "k8s_audit") == CLUSTER_KEY
