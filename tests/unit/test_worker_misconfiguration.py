"""What an operator gets wrong before `peregrine worker` (and replay, webhook) start: each is one
ConfigError naming the setting, never a traceback or a wait. Values that no client can use are
refused by the settings; a Kafka that cannot be talked to is explained by one probe
connection, within what is left of the start-up budget. The Kafka stand-ins are local sockets
(one that never answers, one that closes at once); the real broker's cases are in
tests/integration/test_misconfigured_stack.py."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pipeline.cli.worker import check_data_dir
from pipeline.errors import ConfigError
from pipeline.stream.credentials import explain_kafka_failure
from pipeline.stream.settings import PipelineSettings


@pytest.mark.parametrize("name, value, says", [
    # OverflowError traceback from the web port probe
    ("PEREGRINE_WEB_PORT", "99999", "PEREGRINE_WEB_PORT (--web-port) must be a port number from 1 to 65535, got 99999"),
    ("PEREGRINE_WEB_PORT", "-1", "PEREGRINE_WEB_PORT (--web-port) must be a port number from 1 to 65535, got -1"),
    # the worker started, then RocksDB crashed it with a traceback
    ("PEREGRINE_ROCKSDB_BLOCK_CACHE_MB", "-1", "PEREGRINE_ROCKSDB_BLOCK_CACHE_MB must be at least 1, got -1"),
    # the worker started, then aiokafka's fetcher failed to encode every fetch, in a loop of tracebacks
    ("PEREGRINE_FETCH_MAX_BYTES", "100000000000", "PEREGRINE_FETCH_MAX_BYTES must be at most 2147483647"),
    # "did not answer within 30s (gaierror)", at once
    ("PEREGRINE_BROKER", "127.0.0.1:abc", "PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP='127.0.0.1:abc': each broker must be HOST:PORT"),
    ("PEREGRINE_BROKER", "127.0.0.1:9092,", "each broker must be HOST:PORT"),
    ("PEREGRINE_KAFKA_BOOTSTRAP", "kafka:0", "PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP='kafka:0'"),
    # a warning that OpenSearch "does not answer", and a worker that never stored an alert
    ("PEREGRINE_OPENSEARCH_URL", "not a url", "PEREGRINE_OPENSEARCH_URL='not a url' is not an OpenSearch URL"),
    ("PEREGRINE_OPENSEARCH_URL", "opensearch:9200", "use http://HOST:PORT or https://HOST:PORT"),
    ("PEREGRINE_OPENSEARCH_URL", "http://opensearch:99999", "is not an OpenSearch URL"),
])
def test_a_value_no_client_can_use_is_one_line_naming_the_setting(name, value, says):
    with pytest.raises(ConfigError) as error:
        PipelineSettings.from_env({name: value})
    assert says in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("broker", ["127.0.0.1:9092", "kafka-0.kafka:9092,kafka-1.kafka:9092", "kafka", "[::1]:9092", "[::1]"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:9200", "https://search.example.org", "http://[::1]:9200/"])
def test_the_addresses_clients_take_are_taken(broker, url):
    settings = PipelineSettings.from_env({"PEREGRINE_BROKER": broker, "PEREGRINE_OPENSEARCH_URL": url})
    assert (settings.broker, settings.opensearch_url) == (broker, url)


def test_a_state_directory_that_cannot_be_made_is_one_line(tmp_path):
    # as root a mode bit stops nothing; a regular file on the path stops everyone
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = PipelineSettings.from_env({"PEREGRINE_DATA_DIR": str(blocker / "state"), "PEREGRINE_APP_ID": "w1"})
    with pytest.raises(ConfigError) as error:
        check_data_dir(settings)
    assert str(error.value) == (f"PEREGRINE_DATA_DIR={blocker / 'state'}: cannot write the worker's state directory "
                                f"{blocker / 'state' / 'w1'} (Not a directory); set PEREGRINE_DATA_DIR to a writable directory")


def test_a_missing_state_directory_is_made(tmp_path):
    settings = PipelineSettings.from_env({"PEREGRINE_DATA_DIR": str(tmp_path / "new" / "dir"), "PEREGRINE_APP_ID": "w1"})
    check_data_dir(settings)
    assert (tmp_path / "new" / "dir" / "w1").is_dir() and not any((tmp_path / "new" / "dir" / "w1").iterdir())


async def _local_server(on_connection) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_broker_that_never_answers_costs_the_probe_only_what_is_left_of_the_budget():
    held = []

    async def silent(reader, writer):
        held.append(writer)  # accepted, never answered: a host that drops what it is sent looks the same

    server, broker = await _local_server(silent)
    try:
        settings = PipelineSettings.from_env({"PEREGRINE_BROKER": broker})
        # the clients already spent the 30 s; the probe used to take 30 more
        line = await asyncio.wait_for(explain_kafka_failure(settings, broker, 30, TimeoutError(), probe_s=0.5), 20)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert line.startswith(f"Kafka broker {broker} did not answer within 30s (TimeoutError)")


async def test_a_listener_that_closes_a_plaintext_client_says_so():
    async def hang_up(reader, writer):
        writer.close()  # as a TLS listener does with a plaintext ApiVersions request

    server, broker = await _local_server(hang_up)
    try:
        settings = PipelineSettings.from_env({"PEREGRINE_BROKER": broker})
        line = await asyncio.wait_for(explain_kafka_failure(settings, broker, 10, ConnectionError()), 20)
    finally:
        server.close()
        await server.wait_closed()
    assert line.startswith(f"Kafka at {broker} closed the connection without answering (KafkaConnectionError): "
                           "is it a Kafka listener for PEREGRINE_KAFKA_SECURITY_PROTOCOL (PLAINTEXT)?")


async def test_a_host_name_that_does_not_resolve_says_so():
    broker = "kafka.peregrine-test.invalid:9092"  # .invalid never resolves (RFC 6761)
    settings = PipelineSettings.from_env({"PEREGRINE_BROKER": broker})
    line = await asyncio.wait_for(explain_kafka_failure(settings, broker, 10, socket.gaierror()), 30)
    assert line.startswith(f"Kafka broker {broker}: host name kafka.peregrine-test.invalid does not resolve (gaierror: ")
    assert line.endswith("check PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP")
