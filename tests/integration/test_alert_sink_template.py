"""The sink installs its index template before its first bulk, so the first daily index gets the typed mappings."""

from __future__ import annotations

import copy
import uuid

from pipeline.alerts.alert import Alert
from pipeline.rules.model import Priority
from pipeline.sinks.document import alert_document
from pipeline.sinks.opensearch import AlertSink
from pipeline.stack.provision import load_template
from pipeline.stack.settings import DEFAULTS


async def test_first_flush_installs_the_template_then_the_index_is_typed(opensearch, opensearch_url):
    tag = uuid.uuid4().hex[:8]
    prefix = f"sinktest-{tag}-"  # outside peregrine-alerts-*: only the test's template applies
    name = f"sinktest-{tag}"
    template = copy.deepcopy(load_template(DEFAULTS.alerts_template_path))
    template["index_patterns"] = [f"{prefix}*"]
    sink = AlertSink(opensearch_url, prefix, template=template, template_name=name)
    alert = Alert(uuid=f"sink-{tag}", time_ns=1_763_798_400 * 10**9 + 123, rule="R", priority=Priority.parse("notice"),
                  source="syscall", output="o", message="m", output_fields={"container.id": "c1", "proc.name": "sh"},
                  tags=("t",), hostname="h")
    try:
        assert not await opensearch.indices.exists_index_template(name=name)
        sink.add(alert.uuid, alert.time_ns, alert_document(alert))
        assert await sink.flush() == []
        assert await opensearch.indices.exists_index_template(name=name)
        index = f"{prefix}2025.11.22"
        mapping = (await opensearch.indices.get_mapping(index=index))[index]["mappings"]["properties"]
        assert mapping["time"]["type"] == "date_nanos"
        assert mapping["output_fields"]["type"] == "flat_object"
        assert mapping["context"]["properties"]["container_id"]["type"] == "keyword"
        found = await opensearch.get(index=index, id=alert.uuid)
        assert found["_source"]["context"] == {"container_id": "c1", "process": "sh"}
        assert found["_source"]["time"] == "2025-11-22T08:00:00.000000123Z"
    finally:
        await sink.close()
        await opensearch.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
        await opensearch.indices.delete_index_template(name=name, ignore=404)


async def test_long_values_and_a_buffer_larger_than_one_bulk_request_are_all_stored(opensearch, opensearch_url):
    """A 48 KB value (over Lucene's 32766-byte term limit) is stored, cut in output_fields and whole
    in long_values; a buffer over the sink's bulk size goes in several requests, all stored."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"sinktest-{tag}-"
    name = f"sinktest-{tag}"
    template = copy.deepcopy(load_template(DEFAULTS.alerts_template_path))
    template["index_patterns"] = [f"{prefix}*"]
    sink = AlertSink(opensearch_url, prefix, template=template, template_name=name)
    sink.max_bulk_bytes = 150_000  # three or four documents a request
    long = "bash -c 'echo " + "QUJD" * 12_000 + " | base64 -d | sh'"
    alerts = [Alert(uuid=f"sink-{tag}-{n}", time_ns=1_763_798_400 * 10**9 + n, rule="R", priority=Priority.parse("notice"),
                    source="syscall", output=f"shell (command={long})", message="m",
                    output_fields={"proc.cmdline": long, "proc.name": "sh"}, tags=("t",), hostname="h") for n in range(10)]
    try:
        for alert in alerts:
            sink.add(alert.uuid, alert.time_ns, alert_document(alert))
        assert await sink.flush() == [] and sink.stored == 10
        index = f"{prefix}2025.11.22"
        await opensearch.indices.refresh(index=index)
        found = await opensearch.search(index=index, body={"query": {"term": {"output_fields.proc.name": "sh"}}, "size": 20})
        assert found["hits"]["total"]["value"] == 10
        source = found["hits"]["hits"][0]["_source"]
        assert source["long_values"]["proc.cmdline"] == long
        assert source["output_fields"]["proc.cmdline"].endswith(f"…[+{len(long) - 8192} bytes]")
    finally:
        await sink.close()
        await opensearch.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
        await opensearch.indices.delete_index_template(name=name, ignore=404)
