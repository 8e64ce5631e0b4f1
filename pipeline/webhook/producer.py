"""The records of one request to Kafka, acknowledged by every in-sync replica.

Records of one request are handed to the producer in order; with one key per
namespace they share a partition, and the idempotent producer keeps their
order across retries. ``send`` returns only when Kafka has acked all of them,
and raises :class:`KafkaRefused` otherwise, so the receiver answers 503 and
the API server sends the batch again (at least once: the worker's alert ids
are stable over a replay, so OpenSearch stores each alert once).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.structs import TopicPartition

from pipeline.errors import ConfigError, PeregrineError
from pipeline.webhook.eventlist import AuditRecord

log = logging.getLogger(__name__)


class KafkaRefused(PeregrineError):
    """Kafka did not ack a request's events in time."""


class AuditProducer:
    def __init__(self, broker: str, topic: str, *, max_event_bytes: int, timeout_s: float, startup_timeout_s: float,
                 pipeline=None) -> None:
        self.pipeline = pipeline  # PipelineSettings: Kafka security options (None: PLAINTEXT)
        self.broker = broker
        self.topic = topic
        self.max_event_bytes = max_event_bytes
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._producer = None

    async def start(self) -> None:
        """Connect and check the topic exists; a clear ConfigError otherwise."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient

        from pipeline.stack.health import quiet_aiokafka
        from pipeline.stream.credentials import aiokafka_options, explain_kafka_failure
        from pipeline.stream.settings import DEFAULT_KAFKA_COMPRESSION

        security = aiokafka_options(self.pipeline) if self.pipeline is not None else {}

        async def unreachable_because(error: BaseException) -> str:
            if self.pipeline is None:
                return unreachable
            left = timeout - (asyncio.get_running_loop().time() - connecting)
            return await explain_kafka_failure(self.pipeline, self.broker, timeout, error, probe_s=left)

        timeout = self.startup_timeout_s
        connecting = asyncio.get_running_loop().time()
        unreachable = (f"Kafka broker {self.broker} did not answer within {timeout:.0f}s; is it running "
                       "(`peregrine stack status`) and is PEREGRINE_KAFKA_BOOTSTRAP right?")
        with quiet_aiokafka():
            admin = AIOKafkaAdminClient(bootstrap_servers=self.broker, request_timeout_ms=int(timeout * 1000), **security)
            try:
                await asyncio.wait_for(admin.start(), timeout)
                topics = set(await asyncio.wait_for(admin.list_topics(), timeout))
            except Exception as error:  # noqa: BLE001 - refused, timeout, not a Kafka, refused credentials
                failure: BaseException | None = error
            else:
                failure = None
            finally:
                await admin.close()
            if failure is not None:
                raise ConfigError(await unreachable_because(failure))
        if self.topic not in topics:
            raise ConfigError(f"Kafka topic {self.topic} is missing on {self.broker}; create it with "
                              "`peregrine stack provision` or fix PEREGRINE_K8S_AUDIT_TOPIC")
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type=self.pipeline.compression_type if self.pipeline is not None else DEFAULT_KAFKA_COMPRESSION,
            max_request_size=self.max_event_bytes + 64 * 1024,
            request_timeout_ms=int(self.timeout_s * 1000),
            **security,
        )
        try:
            await asyncio.wait_for(producer.start(), timeout)
        except Exception as error:  # noqa: BLE001
            await producer.stop()
            raise ConfigError(await unreachable_because(error)) from None
        self._producer = producer

    async def send(self, records: tuple[AuditRecord, ...]) -> None:
        if self._producer is None:
            raise KafkaRefused("the Kafka producer is not started")
        try:
            await asyncio.wait_for(self._send(records), self.timeout_s)
        except asyncio.TimeoutError:
            raise KafkaRefused(f"Kafka did not ack {len(records)} event(s) within {self.timeout_s:.0f}s") from None
        except Exception as error:  # noqa: BLE001 - any KafkaError: the API server must retry
            raise KafkaRefused(f"Kafka refused the events: {type(error).__name__}: {error}") from None

    async def _send(self, records: tuple[AuditRecord, ...]) -> None:
        assert self._producer is not None
        pending = [await self._producer.send(self.topic, value=r.value, key=r.key) for r in records]
        await asyncio.gather(*pending)

    async def ready(self, timeout_s: float = 2.0) -> str | None:
        """None when Kafka answers a metadata request within ``timeout_s`` and every partition
        of the topic has a leader; else why not (for ``/readyz``: the pod then leaves its
        Service, and the API server's webhook backend retries on another or later)."""
        if self._producer is None:
            return "the Kafka producer is not started"
        client = self._producer.client
        try:
            cluster = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        except asyncio.TimeoutError:
            return f"Kafka at {self.broker} did not answer a metadata request within {timeout_s:g}s"
        except Exception as error:  # noqa: BLE001 - any KafkaError: not ready
            return f"Kafka at {self.broker} did not answer a metadata request: {type(error).__name__}: {error}"
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
            return f"Kafka topic {self.topic} is missing on {self.broker}"
        leaderless = sorted(p for p in partitions if cluster.leader_for_partition(TopicPartition(self.topic, p)) in (None, -1))
        if leaderless:
            return f"Kafka topic {self.topic} has no leader for partition(s) {', '.join(map(str, leaderless))}"
        return None

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
