"""How long the broker may hold the worker's fetch requests (``fetch.max.wait.ms``).

Faust builds its worker consumer with ``fetch_max_wait_ms=1500``, not a
setting. A worker subscribes to several topics (syscall, its repartition
topic, K8s audit, CloudTrail, the tables' changelogs), and aiokafka leaves
a partition out of the next fetch while its fetched records are still
buffered. So the fetch in flight is often one for the *quiet* partitions
only, and the broker holds it the full 1.5 s waiting for data there; the
syscall partition's new records wait behind it. ``bench/pipeline.py`` saw
the worker take a burst every ~1.5 s at 45K events/s: p50 1.5 s from
production to alert. With 100 ms, p50 330 ms at the same rate.

:func:`use_fetch_max_wait` makes the worker consumer Faust creates use
``PEREGRINE_FETCH_MAX_WAIT_MS`` instead. An idle worker then gets an empty
fetch response every that many ms: a few requests a second, nothing more.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_FAUSTS = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def use_fetch_max_wait(milliseconds: int) -> None:
    """Every worker consumer created from now on waits at most ``milliseconds`` on the broker."""

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = _FAUSTS(self, transport)
        consumer._fetch_max_wait_ms = milliseconds  # read when the consumer starts its Fetcher
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
