"""The OCSF variant on the real stack: with PEREGRINE_OCSF_TOPIC set, every alert is also
an OCSF Detection Finding on that topic, keyed like the alert, valid against its schema."""

from __future__ import annotations

import json

import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline_harness import ROOT, ndjson, produce, read_topic

SCHEMA = json.loads((ROOT / "schemas" / "ocsf-detection-finding.schema.json").read_text())


@pytest.fixture
def setup(worker_setup):
    async def make(**extra: str):
        s = await worker_setup(extra_topics=("ocsf",), **extra)
        s.extra.setdefault("PEREGRINE_OCSF_TOPIC", s.topics["ocsf"])
        return s

    return make


def shell(container: str, pid: int, t: int) -> dict:
    return {"evt.type": "execve", "evt.dir": "<", "evt.time": t, "evt.num": t, "proc.pid": pid, "proc.ppid": 1,
            "proc.name": "bash", "proc.cmdline": "bash -i", "container.id": container}


async def test_each_alert_is_also_a_detection_finding_on_the_ocsf_topic(setup):
    s = await setup(PEREGRINE_CONFIG_AUDIT="false")
    s.start()
    t0 = 1_700_000_000_000_000_000
    quiet = [{"evt.type": "open", "evt.time": t0 + i, "proc.pid": 5, "proc.name": "nginx", "container.id": "c1ab"} for i in range(5)]
    await produce(s.bootstrap, s.topics["syscall"], [(b"c1ab", ndjson([shell("c1ab", 100, t0 + 10), *quiet, shell("c1ab", 101, t0 + 20)]))])

    alerts = [orjson.loads(r.value) for r in await read_topic(s.bootstrap, s.topics["alerts"], expect=2, setup=s)]
    records = await read_topic(s.bootstrap, s.topics["ocsf"], expect=2, setup=s)
    assert len(alerts) == 2 and len(records) == 2, s.log_text()
    findings = [orjson.loads(r.value) for r in records]
    validator = Draft202012Validator(SCHEMA)
    for finding in findings:
        assert not list(validator.iter_errors(finding)), finding
    assert {r.key for r in records} == {b"c1ab"}
    by_uid = {f["finding_info"]["uid"]: f for f in findings}
    assert set(by_uid) == {a["uuid"] for a in alerts}
    for alert in alerts:
        finding = by_uid[alert["uuid"]]
        assert (finding["class_uid"], finding["activity_id"], finding["severity_id"]) == (2004, 1, 2)  # Notice -> Low
        assert finding["finding_info"]["title"] == alert["rule"] == "Shell in container"
        assert finding["finding_info"]["desc"] == alert["output"]
        assert finding["time"] == alert["output_fields"]["evt.time"] // 1_000_000
        assert finding["unmapped"] == alert["output_fields"]
        # the output prints no container.image.id, which OCSF requires of a process's container:
        # the container is a resource, not an evidence's (OCSF 1.1.0's Evidence has no container)
        assert {"type": "container", "uid": "c1ab"} in finding["resources"]
        assert "container" not in finding["evidences"][0] and "container" not in finding["evidences"][0]["process"]
        assert finding["evidences"][0]["process"]["cmd_line"] == "bash -i"


async def test_without_the_setting_no_finding_is_produced(setup):
    s = await setup(PEREGRINE_OCSF_TOPIC="")
    s.start()
    await produce(s.bootstrap, s.topics["syscall"], [(b"c2", orjson.dumps(shell("c2", 7, 1_700_000_000_000_000_000)))])
    assert len(await read_topic(s.bootstrap, s.topics["alerts"], expect=1, setup=s)) == 1
    assert await read_topic(s.bootstrap, s.topics["ocsf"], expect=0, timeout=5) == []
