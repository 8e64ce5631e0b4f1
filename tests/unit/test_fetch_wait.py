"""The worker consumer Faust builds waits PEREGRINE_FETCH_MAX_WAIT_MS on the broker, not Faust's fixed
1.5 s (pipeline/stream/fetch_wait.py). The latency it fixes is measured by bench/pipeline.py."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.errors import ConfigError
from pipeline.stream import fetch_wait
from pipeline.stream.fetch_wait import use_fetch_max_wait
from pipeline.stream.settings import PipelineSettings


def worker_consumer(app: faust.App):
    async def build():
        return app.consumer._thread._create_worker_consumer(app.transport)

    return asyncio.run(build())


def test_fausts_worker_consumer_waits_1500_ms_and_ours_the_setting(monkeypatch):
    # Faust's own method (the worker's app module may have swapped it in already)
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", fetch_wait._FAUSTS)
    assert worker_consumer(faust.App("t-fetch-wait-faust", broker="kafka://127.0.0.1:1"))._fetch_max_wait_ms == 1500
    use_fetch_max_wait(100)
    consumer = worker_consumer(faust.App("t-fetch-wait-ours", broker="kafka://127.0.0.1:1"))
    assert consumer._fetch_max_wait_ms == 100
    assert consumer._group_id == "t-fetch-wait-ours"  # the rest is still Faust's consumer


def test_the_setting_is_read_and_bounded(monkeypatch):
    monkeypatch.setenv("PEREGRINE_FETCH_MAX_WAIT_MS", "250")
    assert PipelineSettings.from_env().fetch_max_wait_ms == 250
    monkeypatch.setenv("PEREGRINE_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(ConfigError, match="PEREGRINE_FETCH_MAX_WAIT_MS must be between 1 and 60000"):
        PipelineSettings.from_env()
    monkeypatch.delenv("PEREGRINE_FETCH_MAX_WAIT_MS")
    assert PipelineSettings.from_env().fetch_max_wait_ms == 100
