"""The Faust app of a Peregrine worker, configured from PipelineSettings (env).

Run it with ``peregrine worker`` (which checks the broker and topics first).
Values are raw bytes: the worker decodes with orjson itself, once per batch,
instead of paying Faust's codec per message.
"""

from __future__ import annotations

import faust
from mode.utils.objects import cached_property

from pipeline.state.changelog_acks import AckedChangelogTable
from pipeline.stream.backlog import Backlog
from pipeline.stream import kafka_crc, rewind, stale_fetch
from pipeline.stream.bounded_stop import BoundedStop
from pipeline.stream.credentials import faust_credentials
from pipeline.stream.fetch_wait import use_fetch_max_wait
from pipeline.stream.flow_control import ResumeOnlyClearsAfterSuspend
from pipeline.stream.log_level import quiet_opensearch_client, restore_root_level
from pipeline.stream.settings import PipelineSettings

settings = PipelineSettings.from_env()
# fetched batches' CRCs checked with the CPU's CRC32 instruction instead of aiokafka's table
# loop (5% of the worker's CPU): pipeline/stream/kafka_crc.py
kafka_crc.install()
# the broker holds a fetch at most this long, not Faust's fixed 1.5 s: pipeline/stream/fetch_wait.py
use_fetch_max_wait(settings.fetch_max_wait_ms)
# after a rebalance, never-committed stream partitions rewind too, and changelog partitions go back
# to where recovery is, so records fetched and dropped during it are not skipped: pipeline/stream/rewind.py;
# where each partition's reading starts goes to the backlog (pipeline/stream/backlog.py)
backlog = Backlog()
rewind.install(backlog.started)
# records fetched before a seek of their partition (the end of a rebalance's recovery) are not
# handed to the streams after it, where Faust took them for a gap and committed past records no
# worker processed: pipeline/stream/stale_fetch.py
stale_fetch.install()
# opensearch-py's warning and traceback for each failed request while OpenSearch is away stay out
# unless at -l debug (the sink logs each retry: why, and when): pipeline/stream/log_level.py
quiet_opensearch_client()


class PeregrineApp(BoundedStop, faust.App):
    """Faust's app; its stop waits at most ``stop_wait_s`` for batches in flight, and a revoke at
    most ``revoke_wait_s`` for those of the revoked partitions (pipeline/stream/bounded_stop.py)."""

    revoke_wait_s = settings.revoke_wait_s  # PEREGRINE_REVOKE_WAIT_S

    @cached_property
    def flow_control(self) -> ResumeOnlyClearsAfterSuspend:
        """Faust's flow control, except that a resume while the flow runs keeps the queued
        events (Faust's own drops a record fetched while recovery seeks the stream
        partitions: pipeline/stream/flow_control.py)."""
        return ResumeOnlyClearsAfterSuspend(loop=self.loop)

    async def on_started(self) -> None:
        await super().on_started()
        # at -l warn and above, Faust's start-up spinner left the root logger at DEBUG: every
        # debug call of aiokafka and Faust built a record for nothing (pipeline/stream/log_level.py)
        restore_root_level()


app = PeregrineApp(
    settings.app_id,
    broker=f"kafka://{settings.broker}",
    broker_credentials=faust_credentials(settings),  # None for PLAINTEXT: PEREGRINE_KAFKA_SECURITY_PROTOCOL etc.
    store="rocksdb://" if settings.store == "rocksdb" else "memory://",
    datadir=str(settings.data_dir / settings.app_id),
    topic_partitions=settings.partitions,
    topic_disable_leader=True,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    # a worker restarted under the same instance id takes its partitions back at once,
    # instead of after the dead member's session timeout (Kafka static membership)
    consumer_group_instance_id=settings.instance_id or None,
    broker_commit_interval=1.0,
    # up to PEREGRINE_FETCH_MAX_BYTES a partition per fetch (Faust's default is 1 MiB: with
    # collectors' 100-event messages of ~90 KB the worker waited on a fetch every ~10 messages)
    consumer_max_fetch_size=settings.fetch_max_bytes,
    producer_acks=-1,
    producer_compression_type=settings.compression_type,  # PEREGRINE_KAFKA_COMPRESSION, zstd by default
    stream_wait_empty=True,
    # tables whose changelog records a batch's delivery awaits before it releases the batch's
    # messages: Faust's flush before a commit can give up on them (pipeline/state/changelog_acks.py)
    Table=AckedChangelogTable,
    web_host="127.0.0.1",
    web_port=settings.web_port,
    web_in_thread=False,
)

raw = {"key_serializer": "raw", "value_serializer": "raw"}
syscall_topics = app.topic(settings.syscall_topic, settings.repartition_topic, **raw)
# the regroup topic (pipeline/stream/regroup.py) carries every source's events to correlations
# grouped by another field than their topic's key; the stateless agent evaluates them
other_topics = app.topic(settings.k8s_audit_topic, settings.cloudtrail_topic, settings.regroup_topic, **raw)
repartition_topic = app.topic(settings.repartition_topic, partitions=settings.partitions, internal=True, **raw)
regroup_topic = app.topic(settings.regroup_topic, partitions=settings.partitions, internal=True, **raw)
alerts_topic = app.topic(settings.alerts_topic, **raw)
deadletter_topic = app.topic(settings.deadletter_topic, **raw)
ocsf_topic = app.topic(settings.ocsf_topic, **raw) if settings.ocsf_topic else None

table_options = {"block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024} if settings.store == "rocksdb" else None
process_tree = app.Table(
    settings.table_name,
    default=None,
    key_type=bytes,  # raw codec: the tree is our own compact JSON
    value_type=bytes,
    partitions=settings.partitions,
    options=table_options,
)
# correlation windows (pipeline/correlation): one key per correlation and group, the group's
# JSON state prefixed by its partition (pipeline/correlation/table.py); str keys, so a key read
# back from the changelog equals the one written
correlation_state = app.Table(
    settings.correlation_table_name,
    default=None,
    key_type=str,
    value_type=bytes,
    partitions=settings.partitions,
    options=table_options,
)
