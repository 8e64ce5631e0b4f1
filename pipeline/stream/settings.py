"""The worker's settings: topics, store, batching, limits, sinks.

Defaults come from the stack's settings (pipeline.stack.settings: broker,
OpenSearch, topic names and partition counts, index prefix); every value can
be overridden by a ``PEREGRINE_*`` environment variable, which is how tests
give each worker its own topics, app id and index prefix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from pipeline.errors import ConfigError
from pipeline.stack import settings as stack
from pipeline.stream.bounded_stop import REVOKE_WAIT_S

STORES = ("rocksdb", "memory")
REGROUP = "regroup"  # the "source" of the regroup topic: envelopes, not events (pipeline/stream/regroup.py)
# Kafka's record-batch codecs (aiokafka decodes them all through cramjam)
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own rule for topic (and so group) names
_INDEX_NAME_REFUSED = re.compile(r'[\\/*?"<>| ,#:A-Z]')  # what OpenSearch refuses in an index name (and upper case)
_KAFKA_INT32 = 2**31 - 1  # a Kafka request's byte counts are int32: aiokafka's fetcher dies on a larger one, in a loop
# Peregrine's producers' codec (PEREGRINE_KAFKA_COMPRESSION), also for a producer made without settings.
# zstd: aiokafka encodes lz4 at level 9 (~200 MB/s here), zstd at its default (~1.5 GB/s)
DEFAULT_KAFKA_COMPRESSION = "zstd"


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    app_id: str = "peregrine-worker"
    instance_id: str = ""  # static group membership: a stable name per worker (e.g. the pod name); empty: dynamic
    broker: str = stack.DEFAULTS.kafka_bootstrap
    opensearch_url: str = stack.DEFAULTS.opensearch_url
    syscall_topic: str = stack.SYSCALL_TOPIC
    k8s_audit_topic: str = stack.K8S_AUDIT_TOPIC
    cloudtrail_topic: str = stack.CLOUDTRAIL_TOPIC
    alerts_topic: str = stack.ALERTS_TOPIC
    deadletter_topic: str = stack.DEADLETTER_TOPIC
    ocsf_topic: str = ""  # empty: no OCSF variant
    route_by_priority: bool = False  # each alert also to <alerts topic>.<priority> (created by the worker)
    partitions: int = stack.DEFAULTS.input_partitions  # syscall topic, its repartition topic and the table
    index_prefix: str = stack.ALERTS_INDEX_PREFIX
    store: str = "rocksdb"
    data_dir: Path = stack.DEFAULTS.home / "worker"
    rocksdb_block_cache_mb: int = 16
    web_port: int = 6066
    batch_size: int = 1000  # Kafka messages per batch
    batch_within_s: float = 0.2
    # Kafka fetch size a partition, in compressed bytes; at least max_message_bytes. It bounds
    # what the worker holds fetched: 4 MiB of zstd-compressed bench events decode to ~100 MiB
    fetch_max_bytes: int = 4 << 20
    # how Peregrine's producers (replay, webhook, the worker's alerts, dead letters, repartition
    # and changelogs) compress record batches; a consumer reads every codec whatever this says
    kafka_compression: str = DEFAULT_KAFKA_COMPRESSION
    fetch_max_wait_ms: int = 100  # how long the broker may hold a fetch with no new data (Faust's own: 1500)
    max_message_bytes: int = 1_048_576
    max_processes_per_container: int = 4096  # past it, a container's least recently seen process goes
    max_containers: int = 100_000  # past it, the least recently seen container's tree is deleted
    exited_ttl_s: float = 60.0  # an exited process stays this long (event time) for late children
    idle_container_ttl_s: float = 3600.0  # a container with no event for this long (processing time) is deleted
    rule_matching: str = "first"
    rules: str = ""  # os.pathsep-separated paths; empty: the repo's rules/*_rules.yaml
    correlation_limits: str = ""  # "max_window=1h,allowed_lateness=5s,throttle=0s,max_groups=200000,...": pipeline/correlation
    config_audit: bool = True  # Polaris checks on objects in k8s_audit create/update/patch events
    audit_config: str = ""  # Polaris config.yaml for them; empty: the built-in checks and severities
    opensearch_retry_max_s: float = 30.0
    # how long a revoke (a rebalance) waits for the revoked partitions' batches in flight before it
    # gives them up, offsets uncommitted (pipeline/stream/bounded_stop.py); the group waits meanwhile
    revoke_wait_s: float = REVOKE_WAIT_S
    startup_timeout_s: float = 30.0
    # Kafka security (pipeline/stream/credentials.py): every Kafka client the worker, replay and webhook make
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SASL_PLAINTEXT, SASL_SSL, SSL
    kafka_sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)  # never in a repr or a log line
    kafka_sasl_password_file: Path | None = None  # first line is the password
    kafka_ca_file: Path | None = None  # for SSL / SASL_SSL; empty: the system's CAs
    # OpenSearch basic auth for the alert sink and the alert commands
    opensearch_username: str = ""
    opensearch_password: str = field(default="", repr=False)
    opensearch_ca_file: Path | None = None

    @property
    def compression_type(self) -> str | None:
        """``kafka_compression`` as aiokafka's and Faust's ``compression_type`` (None: uncompressed)."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def repartition_topic(self) -> str:
        return f"{self.syscall_topic}.by-container.{self.app_id}"

    @property
    def regroup_topic(self) -> str:
        """Events of every source on their way to a correlation grouped by another field than
        their topic's key (pipeline/stream/regroup.py), keyed by the group."""
        return f"{self.syscall_topic}.by-group.{self.app_id}"

    @property
    def table_name(self) -> str:
        return "process-tree"

    @property
    def correlation_table_name(self) -> str:
        return "correlation-state"

    def priority_topics(self) -> dict[str, str]:
        """Falco priority (lower case) -> its topic, when alerts are routed by priority."""
        from pipeline.rules.model import Priority

        return {p.label.lower(): f"{self.alerts_topic}.{p.label.lower()}" for p in Priority}

    def source_topics(self) -> dict[str, str]:
        """topic -> event source."""
        return {
            self.syscall_topic: "syscall",
            self.repartition_topic: "syscall",
            self.k8s_audit_topic: "k8s_audit",
            self.cloudtrail_topic: "aws_cloudtrail",
            self.regroup_topic: REGROUP,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "PipelineSettings":
        env = os.environ if env is None else env
        base = stack.StackSettings.from_env(env)
        values: dict[str, object] = {
            "broker": base.kafka_bootstrap,
            "opensearch_url": base.opensearch_url,
            "partitions": base.input_partitions,
            "data_dir": base.home / "worker",
        }
        types = {f.name: f.type for f in fields(cls)}
        for name in types:
            raw = env.get(f"PEREGRINE_{name.upper()}")
            if raw is None or raw.strip() == "":
                continue
            values[name] = _convert(name, raw.strip(), cls.__dataclass_fields__[name].default)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        if self.store not in STORES:
            raise ConfigError(f"PEREGRINE_STORE must be one of {', '.join(STORES)}, got {self.store!r}")
        if self.rule_matching not in ("first", "all"):
            raise ConfigError(f"PEREGRINE_RULE_MATCHING must be first or all, got {self.rule_matching!r}")
        for name in ("batch_size", "max_message_bytes", "max_processes_per_container", "max_containers", "partitions",
                     "rocksdb_block_cache_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PEREGRINE_{name.upper()} must be at least 1, got {getattr(self, name)}")
        for name in ("max_message_bytes", "fetch_max_bytes"):
            if getattr(self, name) > _KAFKA_INT32:
                raise ConfigError(f"PEREGRINE_{name.upper()} must be at most {_KAFKA_INT32} (Kafka's largest byte count), "
                                  f"got {getattr(self, name)}")
        if not 1 <= self.web_port <= 65535:
            raise ConfigError(f"PEREGRINE_WEB_PORT (--web-port) must be a port number from 1 to 65535, got {self.web_port}")
        if self.fetch_max_bytes < self.max_message_bytes:
            raise ConfigError(f"PEREGRINE_FETCH_MAX_BYTES ({self.fetch_max_bytes}) must be at least PEREGRINE_MAX_MESSAGE_BYTES "
                              f"({self.max_message_bytes}), or the largest messages could never be fetched")
        if self.kafka_compression not in COMPRESSIONS:
            raise ConfigError(f"PEREGRINE_KAFKA_COMPRESSION must be one of {', '.join(COMPRESSIONS)}, got {self.kafka_compression!r}")
        if not 1 <= self.fetch_max_wait_ms <= 60_000:
            raise ConfigError(f"PEREGRINE_FETCH_MAX_WAIT_MS must be between 1 and 60000, got {self.fetch_max_wait_ms}")
        for name in ("exited_ttl_s", "idle_container_ttl_s", "batch_within_s", "opensearch_retry_max_s", "startup_timeout_s",
                     "revoke_wait_s"):
            stack.checked_seconds(f"PEREGRINE_{name.upper()}", getattr(self, name))

        self._check_names()
        self._check_addresses()
        self._check_credentials()

    def _check_addresses(self) -> None:
        """Addresses the clients can parse: a port that is not a number was "did not answer within 30s"
        (a DNS error on "host:abc"), an OpenSearch URL without a scheme a warning that it is away."""
        from urllib.parse import urlsplit

        for entry in self.broker.split(","):
            if not _is_broker_address(entry.strip()):
                raise ConfigError(f"PEREGRINE_BROKER / PEREGRINE_KAFKA_BOOTSTRAP={self.broker!r}: each broker must be "
                                  "HOST:PORT (PORT from 1 to 65535), several separated by commas")
        try:
            url = urlsplit(self.opensearch_url)
            url_port = url.port
        except ValueError:
            url, url_port = None, None
        if url is None or url.scheme not in ("http", "https") or not url.hostname or url_port == 0:
            raise ConfigError(f"PEREGRINE_OPENSEARCH_URL={self.opensearch_url!r} is not an OpenSearch URL: "
                              "use http://HOST:PORT or https://HOST:PORT")

    def _check_names(self) -> None:
        """Topic names Kafka takes, one topic for each input and output, an index prefix OpenSearch
        takes. Two inputs on one topic made every event of one of them a schema dead letter."""
        if not _KAFKA_NAME.fullmatch(self.app_id) or self.app_id in (".", ".."):
            raise ConfigError(f"PEREGRINE_APP_ID={self.app_id!r}: use letters, digits, '.', '_' and '-' "
                              "(it names the consumer group, the worker's own topics and its state directory)")
        named = {"PEREGRINE_SYSCALL_TOPIC": self.syscall_topic, "PEREGRINE_K8S_AUDIT_TOPIC": self.k8s_audit_topic,
                 "PEREGRINE_CLOUDTRAIL_TOPIC": self.cloudtrail_topic, "PEREGRINE_ALERTS_TOPIC": self.alerts_topic,
                 "PEREGRINE_DEADLETTER_TOPIC": self.deadletter_topic}
        if self.ocsf_topic:
            named["PEREGRINE_OCSF_TOPIC"] = self.ocsf_topic
        seen: dict[str, str] = {}
        for env_name, topic in named.items():
            if not _KAFKA_NAME.fullmatch(topic) or topic in (".", ".."):
                raise ConfigError(f"{env_name}={topic!r} is not a Kafka topic name (letters, digits, '.', '_' and '-', "
                                  "at most 249 of them)")
            if topic in seen:
                raise ConfigError(f"{seen[topic]} and {env_name} both name topic {topic!r}: each input and output needs its own")
            seen[topic] = env_name
        derived = [self.repartition_topic, self.regroup_topic]
        if self.route_by_priority:
            derived += self.priority_topics().values()
        for topic in derived:
            if len(topic) > 249:
                raise ConfigError(f"the worker's topic {topic[:60]}... would be longer than Kafka's 249 characters: "
                                  "shorten PEREGRINE_SYSCALL_TOPIC, PEREGRINE_ALERTS_TOPIC or PEREGRINE_APP_ID")
            if topic in seen:
                raise ConfigError(f"{seen[topic]}={topic!r} is a topic the worker writes itself; choose another name")
        prefix = self.index_prefix
        if not prefix or _INDEX_NAME_REFUSED.search(prefix) or prefix[0] in "_-+." or len(prefix.encode()) > 200:
            raise ConfigError(f"PEREGRINE_INDEX_PREFIX={prefix!r} cannot start an OpenSearch index name: use lower-case "
                              "letters, digits, '.', '_' and '-', not first '_', '-', '+' or '.', at most 200 bytes")

    def _check_credentials(self) -> None:
        from pipeline.stream.credentials import PROTOCOLS, SASL_MECHANISMS

        if self.kafka_security_protocol not in PROTOCOLS:
            raise ConfigError(f"PEREGRINE_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                              f"got {self.kafka_security_protocol!r}")
        if self.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"PEREGRINE_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                              f"got {self.kafka_sasl_mechanism!r}")
        if self.kafka_sasl_password and self.kafka_sasl_password_file is not None:
            raise ConfigError("give the Kafka password either in PEREGRINE_KAFKA_SASL_PASSWORD or in "
                              "PEREGRINE_KAFKA_SASL_PASSWORD_FILE, not both")
        if self.kafka_security_protocol.startswith("SASL_") and not self.kafka_sasl_username:
            raise ConfigError(f"PEREGRINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                              "PEREGRINE_KAFKA_SASL_USERNAME")
        for name in ("kafka_sasl_password_file", "kafka_ca_file", "opensearch_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"PEREGRINE_{name.upper()}={path}: no such file")
        if self.opensearch_password and not self.opensearch_username:
            raise ConfigError("PEREGRINE_OPENSEARCH_PASSWORD is set without PEREGRINE_OPENSEARCH_USERNAME")

    def with_(self, **changes: object) -> "PipelineSettings":
        return replace(self, **changes)


def _is_broker_address(entry: str) -> bool:
    """HOST, HOST:PORT or [IPv6]:PORT, as Kafka's clients take a bootstrap address (no port: 9092)."""
    host, colon, port = (entry, "", "") if entry.endswith("]") else entry.rpartition(":")
    if not colon:
        host = entry
    return bool(host.strip("[]")) and (not colon or (port.isdigit() and 1 <= int(port) <= 65535))


def _convert(name: str, raw: str, default: object) -> object:
    env_name = f"PEREGRINE_{name.upper()}"
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name}={raw!r} is not a boolean (true/false)")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env_name}={raw!r} is not a whole number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{env_name}={raw!r} is not a number") from None
    if isinstance(default, Path) or name.endswith("_file"):
        return Path(raw).expanduser()
    if name in ("kafka_security_protocol", "kafka_sasl_mechanism"):
        return raw.upper()
    if name == "kafka_compression":
        return raw.lower()
    return raw
