"""The local stack works end to end: Kafka round trips, OpenSearch indexes and
searches, and the alert template shapes `peregrine-alerts-*` indices."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.stack.settings import ALERTS_TEMPLATE_NAME, ALERTS_INDEX_PREFIX

FALCO_ALERT = {
    "time": "2026-11-22T19:00:00.123456789Z",
    "rule": "Terminal shell in container",
    "priority": "Notice",
    "source": "syscall",
    "hostname": "node-1",
    "uuid": "7f0c2d5e-8f4e-4a43-9a57-0c1c2b0e5a11",
    "output": "A shell was spawned in a container with an attached terminal (user=root shell=bash)",
    "output_fields": {
        "container.id": "abc123def456",
        "proc.name": "bash",
        "proc.cmdline": "bash -i",
        "user.name": "root",
        "evt.time": 1795374000123456789,
    },
    "tags": ["container", "shell", "mitre_execution"],
}


async def test_provisioned_topics_exist_with_configured_partitions(stack, bootstrap_servers):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([t.name for t in stack.settings.topics])}
    finally:
        await admin.close()
    for spec in stack.settings.topics:
        assert described[spec.name]["error_code"] == 0
        assert len(described[spec.name]["partitions"]) == spec.partitions


async def test_kafka_round_trip_keeps_exact_messages_and_per_key_order(bootstrap_servers, topic_factory):
    topic = await topic_factory(partitions=3)
    sent = [(f"container-{i % 3}".encode(), f'{{"seq": {i}, "evt.type": "execve"}}'.encode()) for i in range(30)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in sent:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=f"{topic}.g", auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[tuple[bytes, bytes, int]] = []
    try:
        while len(received) < len(sent):
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for records in batch.values():
                received += [(r.key, r.value, r.partition) for r in records]
    finally:
        await consumer.stop()

    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    for key in {k for k, _ in sent}:
        assert [v for k, v, _ in received if k == key] == [v for k, v in sent if k == key]
        assert len({p for k, _, p in received if k == key}) == 1


async def test_opensearch_indexes_then_finds_a_document(opensearch, index_name):
    await opensearch.index(index=index_name, id="doc-1", body={"message": "hello peregrine", "n": 7}, refresh=True)
    found = await opensearch.search(index=index_name, body={"query": {"match": {"message": "peregrine"}}})
    hits = found["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["doc-1"]
    assert hits[0]["_source"] == {"message": "hello peregrine", "n": 7}


async def test_alert_template_is_installed_for_the_alert_index_pattern(opensearch):
    body = await opensearch.indices.get_index_template(name=ALERTS_TEMPLATE_NAME)
    (template,) = body["index_templates"]
    assert template["index_template"]["index_patterns"] == [f"{ALERTS_INDEX_PREFIX}*"]


async def test_alert_index_gets_template_mappings_and_flat_output_fields(opensearch, index_name):
    await opensearch.index(index=index_name, id=FALCO_ALERT["uuid"], body=FALCO_ALERT, refresh=True)

    mapping = (await opensearch.indices.get_mapping(index=index_name))[index_name]["mappings"]
    props = mapping["properties"]
    assert props["time"]["type"] == "date_nanos"
    assert props["output_fields"]["type"] == "flat_object"
    assert "properties" not in props["output_fields"]  # dotted Falco names added no mappings
    for name in ("rule", "priority", "source", "hostname", "uuid", "tags"):
        assert props[name]["type"] == "keyword", name
    assert props["output"]["type"] == "text"
    assert props["output"]["fields"]["keyword"]["type"] == "keyword"

    by_field = await opensearch.search(
        index=index_name, body={"query": {"term": {"output_fields.proc.name": "bash"}}}
    )
    assert [h["_id"] for h in by_field["hits"]["hits"]] == [FALCO_ALERT["uuid"]]
    nanos = await opensearch.search(
        index=index_name,
        body={"query": {"range": {"time": {"gt": "2026-11-22T19:00:00.123456788Z", "lt": "2026-11-22T19:00:00.12345679Z"}}}},
    )
    assert nanos["hits"]["total"]["value"] == 1
