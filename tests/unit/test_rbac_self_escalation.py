"""The correlation *RBAC self-escalation* (rules/peregrine_correlations.yaml) on full
audit.k8s.io/v1 Events, through the real k8s_audit fields: its example events under
tests/data/events/ (one alert per positive user, none for the negatives), the atelier's
attack (its grant written before the denial it follows: two API servers), and the worker
with two partitions, where the user's events arrive keyed by namespace and meet in the
group's partition through the regroup topic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
EVENTS = ROOT / "tests" / "data" / "events"
ATELIER = ROOT / "deploy" / "atelier" / "rbac-self-escalation" / "events.jsonl"
NAME = "RBAC self-escalation"


def scan(capsys, *paths: Path) -> list[dict]:
    code = main(["scan", "--json", "--quiet", "--matching", "all", "--no-config-audit", "--hostname", "h",
                 "--rules", str(RULES), *map(str, paths)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [orjson.loads(line) for line in captured.out.splitlines()]


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def write(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


def steps(alert: dict) -> list[tuple[str, str]]:
    return [(event["step"], event["id"]) for event in alert["output_fields"]["corr.events"]]


def test_each_positive_user_gives_one_alert_with_its_three_steps(capsys):
    events = read(EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
    alerts = scan(capsys, EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
    assert Counter(a["rule"] for a in alerts) == {NAME: 3}
    users = [a["output_fields"]["corr.group"]["ka.user.name"] for a in alerts]
    assert users == ["alice@example.com", "system:serviceaccount:ci:deployer", "bob@example.com"]
    assert all(a["priority"] == "Critical" for a in alerts)
    for alert in alerts:
        ids = [event_id for _, event_id in steps(alert)]
        mine = [e for e in events if e["auditID"] in ids]
        assert {e["user"]["username"] for e in mine} == {alert["output_fields"]["corr.group"]["ka.user.name"]}
        assert [step for step, _ in steps(alert)] == ["denied", "grant", "retry"]
    alice, deployer, bob = alerts
    assert "denied get secrets in namespace payments" in alice["output"]
    assert "create rolebindings alice-secret-reader (namespace=payments role=secret-reader subjects=(alice@example.com))" in alice["output"]
    # the exec's ResponseStarted arrived before the denial and the Role patch: held, then taken
    assert "patch roles ci-deployer" in deployer["output"] and "/pods/cart-7d9f8b6c5-x2k4q/exec?" in deployer["output"]
    assert [e["stage"] for e in events if e["auditID"] == steps(deployer)[2][1]][0] == "ResponseStarted"
    # a cluster-wide grant for a namespaced action, 9.5 minutes after the denial
    assert "create clusterrolebindings bob-edit (namespace=<NA> role=edit" in bob["output"]
    assert 'allowed by ClusterRoleBinding "bob-edit"' in bob["output"]


def test_negative_examples_fire_nothing(capsys):
    # an administrator's grant, another user's read, a read after 10 minutes 30 s, another namespace
    # or verb, a dry-run grant, a denied grant
    path = EVENTS / "k8s_audit_rbac_self_escalation.negative.jsonl"
    assert len({e["user"]["username"] for e in read(path)}) >= 6
    assert scan(capsys, path) == []


def test_each_positive_stops_firing_without_one_of_its_steps(capsys, tmp_path):
    events = read(EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
    full = scan(capsys, EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
    for alert in full:
        for step, event_id in steps(alert):
            # the exec's ResponseComplete repeats its ResponseStarted's request: both go
            without = [e for e in events if e["auditID"] != event_id]
            alerts = scan(capsys, write(tmp_path / f"{step}.jsonl", without))
            user = alert["output_fields"]["corr.group"]["ka.user.name"]
            assert user not in [a["output_fields"]["corr.group"]["ka.user.name"] for a in alerts], (user, step)
            assert len(alerts) == 2


def test_the_retry_must_be_within_ten_minutes_of_the_denial(capsys, tmp_path):
    events = read(ATELIER)
    denied = next(e for e in events if e["responseStatus"]["code"] == 403)
    assert denied["stageTimestamp"] == "2026-11-30T09:55:03.657000Z"
    (retry,) = [e for e in events if e["verb"] == "list" and e["annotations"]["authorization.k8s.io/decision"] == "allow"]
    others = [e for e in events if e is not retry]
    assert [a["rule"] for a in scan(capsys, ATELIER)] == [NAME]
    for moved, fires in (("10:04:03.600000Z", True), ("10:05:03.657000Z", True), ("10:05:03.700000Z", False)):
        later = dict(retry, stageTimestamp=f"2026-11-30T{moved}", requestReceivedTimestamp=f"2026-11-30T{moved}")
        alerts = scan(capsys, write(tmp_path / "moved.jsonl", others + [later]))
        assert [a["rule"] for a in alerts] == ([NAME] if fires else []), moved


def test_the_atelier_grant_arrives_before_the_denial_and_is_held(capsys, tmp_path):
    events = read(ATELIER)
    verbs = [(e["verb"], e["objectRef"]["resource"], e["responseStatus"]["code"]) for e in events]
    grant, denied = verbs.index(("create", "rolebindings", 201)), verbs.index(("list", "secrets", 403))
    assert grant < denied and events[grant]["stageTimestamp"] > events[denied]["stageTimestamp"]
    (alert,) = scan(capsys, ATELIER)
    assert [step for step, _ in steps(alert)] == ["denied", "grant", "retry"]
    assert steps(alert)[0][1] == events[denied]["auditID"] and steps(alert)[1][1] == events[grant]["auditID"]
    # a denial written after a grant more than the allowed lateness (5 s) newer is late: the chain is missed
    stamp = {"stageTimestamp": "2026-11-30T09:54:59.300000Z", "requestReceivedTimestamp": "2026-11-30T09:54:59.298000Z"}
    late = [dict(e, **stamp) if i == denied else e for i, e in enumerate(events)]
    assert scan(capsys, write(tmp_path / "late.jsonl", late)) == []
    in_time = [dict(e, stageTimestamp="2026-11-30T09:54:59.400000Z") if i == denied else e for i, e in enumerate(events)]
    assert [a["rule"] for a in scan(capsys, write(tmp_path / "in_time.jsonl", in_time))] == [NAME]


def test_in_the_worker_the_users_events_meet_through_the_regroup_topic():
    """Two partitions: the token request (by the administrator) and the deployer's requests are keyed
    by namespace, the cluster-scoped rules review by its audit id; regrouped by user, the chain completes
    once in the group's partition, whatever partition each step arrived in."""
    from test_correlation_table import CURRENT, ChangelogTable
    from test_regroup import Ref

    from pipeline.cli.replay import key_of
    from pipeline.correlation.table import TableCorrelationStore
    from pipeline.stream.batch import Message, kafka_partition
    from pipeline.stream.delivery import build_processor
    from pipeline.stream.settings import PipelineSettings

    rules = ":".join(str(p) for p in sorted(RULES.glob("*.yaml")))
    settings = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "2", "PEREGRINE_RULES": rules, "PEREGRINE_CONFIG_AUDIT": "false"})
    processor = build_processor(settings)
    processor.use_correlation_store(TableCorrelationStore(ChangelogTable(), CURRENT, partitions=2, topic="corr-changelog"))
    topic = settings.k8s_audit_topic
    messages = []
    for offset, event in enumerate(read(ATELIER)):
        key = key_of(event, "k8s_audit")
        partition = kafka_partition(key, 2)
        messages.append(Message(topic, partition, offset, key, orjson.dumps(event), Ref(topic, partition)))
    first = processor.process(messages, None)
    assert [a.rule for _, a in first.alerts] == [] and not first.dead_letters
    group = f'{NAME}\x1f["system:serviceaccount:peregrine-atelier:atelier-deployer"]'.encode()
    assert group in first.regrouped
    alerts = []
    for key, lines in first.regrouped.items():
        partition = kafka_partition(key, 2)
        back = Message(settings.regroup_topic, partition, 0, key, b"\n".join(lines), Ref(settings.regroup_topic, partition))
        result = processor.process([back], None)
        assert not result.dead_letters
        alerts += result.alerts
    assert [(key, alert.rule) for key, alert in alerts] == [(group, NAME)]
    assert [e["step"] for e in alerts[0][1].output_fields["corr.events"]] == ["denied", "grant", "retry"]
