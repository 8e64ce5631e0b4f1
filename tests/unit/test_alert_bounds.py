"""Long values: cut with a marker for Kafka records, for Lucene's term limit in the index,
and in dead letters; nothing else changes."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alerts.alert import Alert
from pipeline.alerts.bounds import MAX_INDEXED_VALUE_BYTES, bound_values, for_kafka
from pipeline.record_bounds import MAX_RECORD_BYTES, cut
from pipeline.deadletter import DeadLetter
from pipeline.rules.model import Priority
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import _first_chunk


def _alert(fields: dict, output: str = "o") -> Alert:
    return Alert(uuid="u-1", time_ns=1_700_000_000_000_000_001, rule="R", priority=Priority.parse("warning"),
                 source="syscall", output=output, message=output, output_fields=fields, tags=("t",), hostname="h")


def test_a_short_text_is_kept_and_a_long_one_cut_with_what_is_missing() -> None:
    assert cut("bash -i", 10) == "bash -i"
    assert cut("a" * 100, 40) == "a" * 40 + "…[+60 bytes]"


@given(st.text(min_size=0, max_size=300), st.integers(1, 200))
def test_a_cut_never_splits_a_character_and_keeps_a_prefix(text: str, max_bytes: int) -> None:
    result = cut(text, max_bytes)
    if len(text.encode()) <= max_bytes:
        assert result == text
    else:
        kept, _, missing = result.rpartition("…[+")
        assert text.startswith(kept) and len(kept.encode()) <= max_bytes
        assert int(missing.removesuffix(" bytes]")) == len(text.encode()) - len(kept.encode())


def test_bound_values_cuts_strings_also_in_lists_and_objects_and_returns_the_originals() -> None:
    long = "x" * 10_000
    fields = {"proc.cmdline": long, "ka.req.pod.containers.image": ["nginx", long], "corr.group": {"k": long},
              "proc.pid": 7, "proc.name": "sh", "none": None}
    bounded, whole = bound_values(fields, 100)
    assert bounded["proc.cmdline"] == "x" * 100 + "…[+9900 bytes]"
    assert bounded["ka.req.pod.containers.image"] == ["nginx", "x" * 100 + "…[+9900 bytes]"]
    assert bounded["corr.group"] == {"k": "x" * 100 + "…[+9900 bytes]"}
    assert {k: bounded[k] for k in ("proc.pid", "proc.name", "none")} == {"proc.pid": 7, "proc.name": "sh", "none": None}
    assert whole == {k: fields[k] for k in ("proc.cmdline", "ka.req.pod.containers.image", "corr.group")}


def test_an_alert_that_fits_kafka_goes_unchanged() -> None:
    alert = _alert({"proc.cmdline": "x" * 100_000}, output="y" * 100_000)
    shorter, document = for_kafka(alert)
    assert shorter is alert and orjson.loads(document)["output_fields"]["proc.cmdline"] == "x" * 100_000


def test_an_alert_too_large_for_kafka_is_cut_to_the_first_cap_that_fits() -> None:
    payload = "QUJD" * 150_000
    alert = _alert({"proc.cmdline": payload, "proc.name": "bash"}, output=f"Shell (command={payload})")
    shorter, document = for_kafka(alert)
    assert len(document) <= MAX_RECORD_BYTES
    sent = orjson.loads(document)
    assert sent["output_fields"]["proc.cmdline"] == payload[:65_536] + f"…[+{600_000 - 65_536} bytes]"
    assert sent["output"].startswith("Shell (command=QUJD") and sent["output_fields"]["proc.name"] == "bash"
    assert sent["uuid"] == "u-1" and shorter.uuid == alert.uuid
    many = _alert({f"f{i}": "z" * 100_000 for i in range(30)})  # 64 KiB each would still be 2 MB
    _, document = for_kafka(many)
    assert len(document) <= MAX_RECORD_BYTES and orjson.loads(document)["output_fields"]["f0"].startswith("z" * 4096 + "…")


def test_the_stored_document_cuts_long_values_under_lucenes_term_limit_and_keeps_them_whole() -> None:
    long = "é" * 20_000  # 40 KB of UTF-8
    document = orjson.loads(alert_document(_alert({"proc.cmdline": long, "proc.name": "sh"})))
    assert len(document["output_fields"]["proc.cmdline"].rpartition("…")[0].encode()) <= MAX_INDEXED_VALUE_BYTES
    assert document["long_values"] == {"proc.cmdline": long}
    assert "long_values" not in orjson.loads(alert_document(_alert({"proc.name": "sh"})))


def test_a_dead_letter_keeps_less_of_the_message_rather_than_not_fitting_a_kafka_record() -> None:
    original = bytes(range(256)) * 4096  # 1 MiB, not UTF-8: base64 would be 1.4 MB
    letter = DeadLetter("undecodable", "x" * 600_000, "t", 0, 5, b"k" * 5000, original)
    record = letter.to_json()
    assert len(record) <= MAX_RECORD_BYTES
    body = orjson.loads(record)
    assert body["size"] == len(original) and body["truncated"] is True and body["encoding"] == "base64"
    assert body["detail"].startswith("x" * 4096 + "…[+") and body["key"].startswith("k" * 1024 + "…[+")
    small = orjson.loads(DeadLetter("schema", "bad", "t", 0, 1, None, b'{"a": 1}').to_json())
    assert small["original"] == '{"a": 1}' and small["truncated"] is False


def test_bulk_requests_are_split_by_size_and_take_at_least_one_document() -> None:
    items = [("i", str(n), b"x" * 1000) for n in range(10)]
    assert _first_chunk(items, 10_000_000) == 10
    assert _first_chunk(items, 3 * 1128) == 3
    assert _first_chunk([("i", "1", b"x" * 50_000)], 1000) == 1


def test_the_ocsf_finding_repeating_the_command_line_also_fits_a_kafka_record() -> None:
    from pipeline.alerts.ocsf import ocsf_json

    payload = "QUJD" * 100_000  # 400 KB: Falco's JSON (twice) fits, the finding (four times) would not
    alert = _alert({"proc.cmdline": payload, "proc.name": "bash", "proc.pid": 7, "container.id": "c1"},
                   output=f"Shell (command={payload})")
    assert for_kafka(alert)[0] is alert
    _, finding = for_kafka(alert, ocsf_json)
    assert len(ocsf_json(alert)) > MAX_RECORD_BYTES >= len(finding)
    assert orjson.loads(finding)["class_uid"] == 2004
