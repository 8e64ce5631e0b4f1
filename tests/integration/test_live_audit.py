"""Live audit on the real stack: a privileged-pod create event on the worker's K8s audit
topic becomes a Polaris alert on the alert topic and in OpenSearch, once (a later
metadata-only update of the pod is not reported again)."""

from __future__ import annotations


import orjson
import pytest

from pipeline_harness import ROOT, produce, read_topic, search_all

PRIVILEGED = "Polaris runAsPrivileged: Should not be running as privileged"
K8S_RULES = ROOT / "rules" / "peregrine_k8s_audit_rules.yaml"


@pytest.fixture
def events(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "unit"))
    import live_audit_events

    return live_audit_events


@pytest.fixture
async def worker(worker_setup):
    # Peregrine's own K8s audit rules, whatever the harness's defaults
    return await worker_setup(label="pg-live", PEREGRINE_RULES=str(K8S_RULES))


async def test_privileged_pod_create_is_a_polaris_alert_on_the_topic_and_in_opensearch(worker, opensearch, events):
    worker.start()
    privileged = events.privileged_pod("debug", "shop")
    hardened = events.hardened_pod("api", "shop")
    audit = [
        events.audit_event("create", "pods", name="debug", request=events.as_request(privileged), response=privileged,
                           user="alice@example.com", audit_id="5e0c1f0a-live-0001"),
        events.audit_event("create", "pods", name="api", request=events.as_request(hardened), response=hardened,
                           audit_id="5e0c1f0a-live-0002"),
        events.audit_event("create", "pods", name="other", level="Metadata", audit_id="5e0c1f0a-live-0003"),
        events.audit_event("delete", "pods", name="debug", response=privileged, audit_id="5e0c1f0a-live-0004"),
    ]
    # an operator labels the privileged pod: the same failure on the same content is not reported again
    labelled = events.privileged_pod("debug", "shop")
    labelled["metadata"]["labels"]["team"] = "payments"
    audit.insert(1, events.audit_event("update", "pods", name="debug", request=events.as_request(labelled), response=labelled,
                                       user="system:serviceaccount:ops:labeller", audit_id="5e0c1f0a-live-0005"))
    # as the webhook receiver produces them: one event per message, keyed by namespace
    await produce(worker.bootstrap, worker.topics["k8s_audit"], [(b"shop", orjson.dumps(e)) for e in audit])

    records = await read_topic(worker.bootstrap, worker.topics["alerts"], expect=2, timeout=120, settle=3.0, setup=worker)
    alerts = [orjson.loads(r.value) for r in records]
    assert sorted(a["rule"] for a in alerts) == [PRIVILEGED, "Privileged pod created"], worker.log_text()
    polaris = next(a for a in alerts if a["rule"] == PRIVILEGED)
    assert polaris["source"] == "k8s_audit" and polaris["priority"] == "Error"
    assert polaris["tags"] == ["k8s", "polaris", "security"]
    fields = polaris["output_fields"]
    assert (fields["ka.target.namespace"], fields["ka.target.name"], fields["ka.user.name"]) == ("shop", "debug", "alice@example.com")
    assert (fields["ka.verb"], fields["ka.auditid"], fields["ka.target.resource"]) == ("create", "5e0c1f0a-live-0001", "pods")
    assert (fields["polaris.check"], fields["polaris.severity"], fields["polaris.container"]) == ("runAsPrivileged", "danger", "shell")
    assert "user=alice@example.com verb=create kind=Pod namespace=shop name=debug container=shell" in polaris["output"]
    assert {r.key for r in records} == {b"shop"}

    hits = await search_all(opensearch, worker.index_prefix, expect=2, timeout=120)
    stored = {h["_id"]: h["_source"] for h in hits}
    assert set(stored) == {a["uuid"] for a in alerts}
    document = stored[polaris["uuid"]]
    assert document["rule"] == PRIVILEGED and document["priority"] == "Error"
    assert document["output_fields"]["polaris.check"] == "runAsPrivileged"
    assert {h["_index"] for h in hits} == {f"{worker.index_prefix}2024.05.01"}

    letters = await read_topic(worker.bootstrap, worker.topics["deadletter"], expect=0, timeout=5, settle=1.0)
    assert letters == []
