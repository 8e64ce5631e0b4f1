"""The worker's hardware CRC-32C check of fetched Kafka batches (pipeline/stream/kafka_crc.py):
same verdict as aiokafka's own check, through aiokafka's real PartitionRecords."""

from __future__ import annotations

from typing import Any

import crc32c
import pytest
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stream import kafka_crc
from pipeline.stream.kafka_crc import HardwareCheckedRecords, batch_crcs

TP = TopicPartition("t", 0)


def v2_batch(base_offset: int, values: list[bytes], compression: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0, producer_id=-1, producer_epoch=-1,
                                        base_sequence=-1, batch_size=1 << 24)
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_700_000_000_000, key=b"k", value=value, headers=[])
    data = bytearray(builder.build())
    data[0:8] = base_offset.to_bytes(8, "big")  # the broker sets the base offset
    return bytes(data)


def legacy_batch(offset: int, value: bytes) -> bytes:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000, key=b"k", value=value)
    data = bytearray(builder.build())
    data[0:8] = offset.to_bytes(8, "big")
    return bytes(data)


def consume(data: bytes, records_class=HardwareCheckedRecords) -> list[bytes]:
    HardwareCheckedRecords.crc32c = crc32c.crc32c
    records = fetcher.PartitionRecords(TP, records_class(data), None, 0, None, None, True, fetcher.READ_UNCOMMITTED)
    return [r.value for r in records]


def test_good_batches_are_read_as_aiokafka_reads_them():
    data = v2_batch(0, [b"a", b"b"]) + v2_batch(2, [b"c" * 5000]) + v2_batch(3, [b"d"])[:-7]  # a partial batch at the end
    assert consume(data) == consume(data, MemoryRecords) == [b"a", b"b", b"c" * 5000]
    assert batch_crcs(data, crc32c.crc32c) == [True, True]  # the partial batch is not one


def test_compressed_batches_are_checked_over_their_compressed_bytes():
    """A producer's gzip batch: the CRC covers the compressed bytes, as Kafka computes it."""
    data = v2_batch(0, [b"x" * 4000, b"y" * 4000], compression=DefaultRecordBatch.CODEC_GZIP)
    assert consume(data) == [b"x" * 4000, b"y" * 4000]
    bad = bytearray(data)
    bad[-5] ^= 0x10
    with pytest.raises(CorruptRecordException):
        consume(bytes(bad))


@pytest.mark.parametrize("where", ["value", "attributes", "crc"])
def test_a_corrupt_batch_still_raises_corrupt_record(where):
    first, second = v2_batch(0, [b"fine"]), bytearray(v2_batch(1, [b"x" * 100]))
    second[{"value": -10, "attributes": 21, "crc": 18}[where]] ^= 0x40
    with pytest.raises(CorruptRecordException):
        consume(first + bytes(second))
    with pytest.raises(CorruptRecordException):  # aiokafka's own check agrees
        consume(first + bytes(second), MemoryRecords)


def test_legacy_batches_keep_aiokafkas_own_check():
    good = legacy_batch(0, b"old")
    assert consume(good) == [b"old"] and batch_crcs(good, crc32c.crc32c) == [None]
    bad = bytearray(good)
    bad[-2] ^= 0x01
    with pytest.raises(CorruptRecordException):
        consume(bytes(bad))


def outcome(data: bytes, records_class) -> Any:
    try:
        return consume(data, records_class)
    except Exception as error:  # noqa: BLE001 - CorruptRecordException, or what aiokafka's C parser raises itself
        return type(error)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=4), min_size=1, max_size=4), st.data())
def test_the_hardware_verdict_is_aiokafkas_for_any_flipped_bit(batches, data):
    """Any one bit flipped anywhere (a value, a CRC, a length, an offset, the magic byte): the
    same records, or the same exception, as with aiokafka's own check (a flipped magic byte makes
    aiokafka's C parser raise SystemError either way)."""
    raw = bytearray()
    for number, values in enumerate(batches):
        raw += v2_batch(number * 10, values)
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, len(raw) * 8 - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
    assert outcome(bytes(raw), HardwareCheckedRecords) == outcome(bytes(raw), MemoryRecords)


def test_install_routes_the_fetcher_through_the_hardware_check(monkeypatch):
    monkeypatch.setattr(fetcher, "MemoryRecords", MemoryRecords)
    assert crc32c.hardware_based, "this machine's CPU has CRC32 instructions; the worker relies on them"
    assert kafka_crc.install() is True
    assert fetcher.MemoryRecords is HardwareCheckedRecords


def test_a_checked_batch_iterates_as_the_batch_does():
    """aiokafka reads a control batch's marker with next(batch), and a data batch's records with for."""
    HardwareCheckedRecords.crc32c = crc32c.crc32c
    records = HardwareCheckedRecords(v2_batch(0, [b"one", b"two"]) + v2_batch(2, [b"three"]))
    batch = records.next_batch()
    assert batch.validate_crc() is True and batch.base_offset == 0 and batch.next_offset == 2
    assert next(batch).value == b"one" and next(batch).value == b"two"
    assert [r.value for r in records.next_batch()] == [b"three"] and not records.has_next()
