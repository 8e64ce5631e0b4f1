"""The webhook's /readyz verdicts from a metadata answer (the real broker's cases, a ready
topic and a deleted one, are in tests/integration/test_webhook.py)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError

from pipeline.webhook.producer import AuditProducer


class Cluster:
    def __init__(self, leaders: dict[int, int | None] | None) -> None:
        self.leaders = leaders

    def partitions_for_topic(self, topic):
        return None if self.leaders is None else set(self.leaders)

    def leader_for_partition(self, tp):
        return self.leaders[tp.partition]


class Client:
    def __init__(self, answer) -> None:
        self.answer = answer

    async def fetch_all_metadata(self):
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "hang":
            await asyncio.sleep(60)
        return self.answer


class Producer:
    def __init__(self, answer) -> None:
        self.client = Client(answer)


def producer_answering(answer) -> AuditProducer:
    audit = AuditProducer("10.0.0.7:9092", "audit", max_event_bytes=1000, timeout_s=5, startup_timeout_s=5)
    audit._producer = Producer(answer)
    return audit


async def test_ready_when_every_partition_has_a_leader():
    assert await producer_answering(Cluster({0: 1, 1: 2})).ready() is None


async def test_a_missing_topic_or_a_leaderless_partition_is_named():
    assert await producer_answering(Cluster(None)).ready() == "Kafka topic audit is missing on 10.0.0.7:9092"
    assert await producer_answering(Cluster({0: 1, 1: -1, 2: None})).ready() == "Kafka topic audit has no leader for partition(s) 1, 2"


async def test_an_unreachable_or_silent_kafka_is_not_ready_and_says_so():
    refused = await producer_answering(KafkaError("Unable to get cluster metadata over all known brokers")).ready()
    assert refused == ("Kafka at 10.0.0.7:9092 did not answer a metadata request: KafkaError: "
                       "KafkaError: Unable to get cluster metadata over all known brokers")
    assert await producer_answering("hang").ready(timeout_s=0.05) == "Kafka at 10.0.0.7:9092 did not answer a metadata request within 0.05s"


async def test_not_started_is_not_ready():
    audit = AuditProducer("10.0.0.7:9092", "audit", max_event_bytes=1000, timeout_s=5, startup_timeout_s=5)
    assert await audit.ready() == "the Kafka producer is not started"
