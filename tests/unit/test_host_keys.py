"""Host events (container.id "host" on every node) are keyed by node: their process
tree, their partition, their alerts' key and their correlation groups."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from correlation_helpers import S, evaluator, load_text, run

from pipeline.cli.replay import key_of
from pipeline.ingest.keys import container_key
from pipeline.stream.batch import DictStateStore, Message, kafka_partition
from pipeline.stream.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "peregrine.events.syscall"


@pytest.mark.parametrize("event, key", [
    ({"container.id": "3b8e51f0a2c7", "evt.hostname": "node-a"}, "3b8e51f0a2c7"),
    ({"container.id": "host", "evt.hostname": "node-a"}, "host:node-a"),
    ({"container.id": "", "evt.hostname": "node-b"}, "host:node-b"),
    ({"evt.hostname": "node-b"}, "host:node-b"),
    ({"container.id": 42, "evt.hostname": "node-b"}, "host:node-b"),
    ({"container.id": "host"}, "host"),
    ({"container.id": "host", "evt.hostname": ""}, "host"),
])
def test_a_container_keeps_its_id_and_a_host_event_is_keyed_by_its_node(event, key):
    assert container_key(event) == key
    assert key_of(event, "syscall") == key.encode()  # what `peregrine replay` keys the message with


def execve(pid: int, ppid: int, name: str, t: int, node: str, **more) -> dict:
    return {"evt.type": "execve", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "proc.ppid": ppid, "proc.name": name,
            "proc.cmdline": name, "container.id": "host", "evt.hostname": node, **more}


def build(partitions: int):
    from pipeline.stream.delivery import build_processor

    return build_processor(PipelineSettings.from_env({"PEREGRINE_RULES": str(ROOT / "tests/data/pipeline/rules.yaml"),
                                                       "PEREGRINE_PARTITIONS": str(partitions)}))


def ndjson(*events: dict) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events)


def test_two_nodes_host_processes_with_the_same_pids_have_their_own_trees():
    """pid 100 is java on node-a and nginx on node-b: curl (pid 200, parent 100, no proc.pname)
    is 'spawned by java' on node-a only. Keyed by "host" alone, node-b's nginx would have
    replaced node-a's java in one shared tree."""
    processor = build(1)
    store = DictStateStore()
    first = processor.process([
        Message(TOPIC, 0, 0, b"host:node-a", ndjson(execve(100, 1, "java", 1, "node-a"))),
        Message(TOPIC, 0, 1, b"host:node-b", ndjson(execve(100, 1, "nginx", 2, "node-b"))),
    ], store)
    assert first.alerts == [] and set(store) == {"host:node-a", "host:node-b"}
    result = processor.process([
        Message(TOPIC, 0, 2, b"host:node-a", ndjson(execve(200, 100, "curl", 3, "node-a"))),
        Message(TOPIC, 0, 3, b"host:node-b", ndjson(execve(200, 100, "curl", 4, "node-b"))),
    ], store)
    assert [(key, alert.rule, alert.output_fields["proc.pname"]) for key, alert in result.alerts] == [
        (b"host:node-a", "Java spawned downloader", "java")]
    assert result.enriched == 2 and result.forwards == []


def test_a_host_event_on_another_nodes_partition_is_forwarded_with_its_node_key():
    processor = build(2)
    nodes = [f"node-{i}" for i in range(40)]
    home = next(n for n in nodes if kafka_partition(f"host:{n}".encode(), 2) == 0)
    away = next(n for n in nodes if kafka_partition(f"host:{n}".encode(), 2) == 1)
    # a collector that keys every host event "host": the pipeline repartitions by node
    result = processor.process([Message(TOPIC, 0, 0, b"host", ndjson(execve(7, 1, "sh", 1, home), execve(7, 1, "sh", 2, away)))],
                               DictStateStore())
    assert [key for key, _ in result.forwards] == [f"host:{away}".encode()]
    assert orjson.loads(result.forwards[0][1])["evt.hostname"] == away and result.containers == 1


SHELL_THEN_CONNECT = """\
- correlation: Shell then connect
  type: sequence
  by: container.id
  maxspan: 10s
  steps:
    - condition: evt.type = execve and proc.name = sh
    - condition: evt.type = connect
  output: "shell then connect in %corr.group"
  priority: WARNING
"""


def test_host_correlation_groups_are_per_node_and_report_container_id_host():
    _, correlations = load_text(SHELL_THEN_CONNECT)

    def event(t: float, kind: str, node: str) -> dict:
        return {"evt.time": int(t * S), "evt.type": kind, "evt.dir": "<", "proc.name": "sh", "container.id": "host",
                "evt.hostname": node}

    # node-a's shell and node-b's connect are not one host's sequence
    assert run(evaluator(correlations), [event(0, "execve", "node-a"), event(1, "connect", "node-b")]) == []
    alerts = run(evaluator(correlations), [event(0, "execve", "node-a"), event(1, "connect", "node-b"), event(2, "connect", "node-a")])
    assert len(alerts) == 1
    assert alerts[0].group == {"container.id": "host"} and alerts[0].group_key.endswith('"host:node-a"]')
    # containers are grouped by container.id alone, as before
    ev = evaluator(correlations)
    containers = [dict(event(0, "execve", "node-a"), **{"container.id": "c1"}), dict(event(1, "connect", "node-b"), **{"container.id": "c1"})]
    assert [a.group for a in run(ev, containers)] == [{"container.id": "c1"}]
