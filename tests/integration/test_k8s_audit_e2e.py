"""K8s audit detections end to end: kube-apiserver-style EventList posted to `peregrine
webhook` (TLS, bearer token) -> K8s audit topic -> `peregrine worker` running Falco's upstream
k8s_audit_rules.yaml and Peregrine's own K8s rules -> alerts on Kafka and in OpenSearch."""

from __future__ import annotations

import os
import uuid
from collections import Counter

import orjson
import pytest

from pipeline_harness import WorkerSetup, delete_alert_indices, read_topic, search_all
from webhook_process import DATA, ROOT, WebhookProcess, eventlist

OWN_K8S_RULES = ROOT / "rules" / "peregrine_k8s_audit_rules.yaml"


@pytest.fixture
async def pipeline(stack, topic_factory, opensearch, tmp_path, upstream_rules_dir):
    topics = {name: await topic_factory(2 if name == "k8s_audit" else 1, prefix=f"pg-{name}")
              for name in ("syscall", "k8s_audit", "cloudtrail", "alerts", "deadletter")}
    worker = WorkerSetup(stack.bootstrap_servers, stack.opensearch_url, topics,
                         f"peregrine-alerts-test-{uuid.uuid4().hex[:8]}-", tmp_path / "worker", 1)
    rules = os.pathsep.join([str(upstream_rules_dir / "k8s_audit_rules.yaml"), str(OWN_K8S_RULES)])
    worker.start(
        PEREGRINE_RULES=rules,
        PEREGRINE_RULE_MATCHING="all",  # both rules fire on one event, as Falco's -o rule_matching=all
        PEREGRINE_CONFIG_AUDIT="false",  # the Polaris checks on audited objects are tested elsewhere
    )
    webhook = WebhookProcess(stack.bootstrap_servers, topics["k8s_audit"], tmp_path / "webhook", token="e2e-" + uuid.uuid4().hex, tls=True)
    try:
        await webhook.start()
        yield worker, webhook
    finally:
        webhook.stop()
        worker.stop_all()
        await delete_alert_indices(opensearch, worker.index_prefix)


async def _count(opensearch, prefix: str, rule: str) -> int:
    await opensearch.indices.refresh(index=f"{prefix}*")
    result = await opensearch.count(index=f"{prefix}*", body={"query": {"term": {"rule": rule}}})
    return result["count"]


async def test_privileged_pod_create_posted_to_the_webhook_is_an_alert_in_opensearch(pipeline, opensearch):
    worker, webhook = pipeline
    # The API server's EventList: two privileged pods in `shop` (alice), two unprivileged ones,
    # a get, and a privileged calico-node in kube-system (an image both rule sets allow).
    items = orjson.loads((DATA / "events" / "k8s_audit_eventlist.json").read_bytes())["items"]
    status, answer = await webhook.post(eventlist(items), token=webhook.token)
    assert (status, answer) == (200, {"accepted": 6, "trimmed": 0, "dropped": 0}), webhook.log_text()

    expected = Counter({
        "Disallowed K8s User": 6,  # upstream: alice is not in allowed_k8s_users
        "Create Privileged Pod": 2,  # upstream
        "Privileged pod created": 2,  # Peregrine's own
        "Pod Created in Kube Namespace": 1,  # upstream: calico-node in kube-system
    })
    records = await read_topic(worker.bootstrap, worker.topics["alerts"], expect=sum(expected.values()), setup=worker, timeout=120)
    alerts = [orjson.loads(r.value) for r in records]
    assert Counter(a["rule"] for a in alerts) == expected, worker.log_text()
    assert all(a["source"] == "k8s_audit" for a in alerts)
    letters = await read_topic(worker.bootstrap, worker.topics["deadletter"], expect=0, timeout=3, settle=0)
    assert letters == []

    hits = await search_all(opensearch, worker.index_prefix, expect=sum(expected.values()), timeout=120)
    assert Counter(h["_source"]["rule"] for h in hits) == expected
    assert {h["_id"] for h in hits} == {a["uuid"] for a in alerts}
    assert await _count(opensearch, worker.index_prefix, "Create Privileged Pod") == 2
    assert await _count(opensearch, worker.index_prefix, "Privileged pod created") == 2

    upstream = sorted((h["_source"] for h in hits if h["_source"]["rule"] == "Create Privileged Pod"), key=lambda a: a["time"])
    own = sorted((h["_source"] for h in hits if h["_source"]["rule"] == "Privileged pod created"), key=lambda a: a["time"])
    assert [a["output_fields"]["ka.req.pod.containers.image"] for a in upstream] == [["ubuntu:22.04"], ["registry.local/shop/worker:2.0"]]
    assert [a["output_fields"]["ka.target.name"] for a in own] == ["debug", "job-runner"]
    # an analyst's context.pod is filled (the output printed the name but not that it was a pod's)
    assert [a["context"]["pod"] for a in own] == ["debug", "job-runner"]
    assert all(a["output_fields"]["ka.user.name"] == "alice@example.com" and a["output_fields"]["ka.target.namespace"] == "shop"
               for a in upstream + own)
    assert all(a["priority"] == "Warning" for a in upstream + own)
    assert "Pod started with privileged container (user=alice@example.com" in upstream[0]["output"]
    assert {h["_index"] for h in hits} == {f"{worker.index_prefix}2024.05.01"}
