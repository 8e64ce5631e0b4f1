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
    assert "denied create pods/exec in namespace shop" in deployer["output"]
    assert "patch roles ci-deployer" in deployer["output"] and "/pods/cart-7d9f8b6c5-x2k4q/exec?" in deployer["output"]
    assert [e["stage"] for e in events if e["auditID"] == steps(deployer)[2][1]][0] == "ResponseStarted"
    # a cluster-wide grant for a namespaced action, 9.5 minutes after the denial
    assert "create clusterrolebindings bob-edit (namespace=<NA> role=edit" in bob["output"]
    assert 'allowed by ClusterRoleBinding "bob-edit"' in bob["output"]


def test_negative_examples_fire_nothing(capsys):
    # an administrator's grant, another user's read, a read after 10 minutes 30 s, another namespace
    # or verb, a dry-run grant, a denied grant, an exec denied and then a plain pod create allowed
    path = EVENTS / "k8s_audit_rbac_self_escalation.negative.jsonl"
    assert len({e["user"]["username"] for e in read(path)}) >= 7
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


def two_partition_worker():
    from test_correlation_table import CURRENT, ChangelogTable

    from pipeline.correlation.table import TableCorrelationStore
    from pipeline.stream.delivery import build_processor
    from pipeline.stream.settings import PipelineSettings

    rules = ":".join(str(p) for p in sorted(RULES.glob("*.yaml")))
    settings = PipelineSettings.from_env({"PEREGRINE_PARTITIONS": "2", "PEREGRINE_RULES": rules, "PEREGRINE_CONFIG_AUDIT": "false"})
    processor = build_processor(settings)
    processor.use_correlation_store(TableCorrelationStore(ChangelogTable(), CURRENT, partitions=2, topic="corr-changelog"))
    return settings, processor


def through_the_regroup_topic(events: list[dict]) -> tuple[dict, list]:
    """The events on a two-partition audit topic, keyed as the webhook keys them (by namespace),
    then what the worker regrouped, read back from the regroup topic: (regrouped lines by group
    key, the (group key, alert) pairs)."""
    from test_regroup import Ref

    from pipeline.cli.replay import key_of
    from pipeline.stream.batch import Message, kafka_partition

    settings, processor = two_partition_worker()
    topic = settings.k8s_audit_topic
    messages = []
    for offset, event in enumerate(events):
        key = key_of(event, "k8s_audit")
        partition = kafka_partition(key, 2)
        messages.append(Message(topic, partition, offset, key, orjson.dumps(event), Ref(topic, partition)))
    first = processor.process(messages, None)
    assert [a.rule for _, a in first.alerts] == [] and not first.dead_letters
    back = []
    for offset, (key, lines) in enumerate(first.regrouped.items()):
        partition = kafka_partition(key, 2)
        back.append(Message(settings.regroup_topic, partition, offset, key, b"\n".join(lines), Ref(settings.regroup_topic, partition)))
    result = processor.process(back, None)  # one batch: its groups are evaluated in event time
    assert not result.dead_letters
    return first.regrouped, result.alerts


def test_in_the_worker_the_users_events_meet_through_the_regroup_topic():
    """Two partitions: the token request (by the administrator) and the deployer's requests are keyed
    by namespace, the cluster-scoped rules review by its audit id; regrouped by user, the chain completes
    once in the group's partition, whatever partition each step arrived in."""
    regrouped, alerts = through_the_regroup_topic(read(ATELIER))
    group = f'{NAME}\x1f["system:serviceaccount:peregrine-atelier:atelier-deployer"]'.encode()
    assert group in regrouped
    assert [(key, alert.rule) for key, alert in alerts] == [(group, NAME)]
    assert [e["step"] for e in alerts[0][1].output_fields["corr.events"]] == ["denied", "grant", "retry"]


def test_in_the_worker_every_positive_example_still_fires():
    """What the retry step no longer regroups (cluster-scoped and non-resource requests) costs no
    chain: the three positive users' chains complete through the regroup topic, bob's cluster-wide
    grant (no namespace) included."""
    _, alerts = through_the_regroup_topic(read(EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl"))
    users = sorted(alert.output_fields["corr.group"]["ka.user.name"] for _, alert in alerts if alert.rule == NAME)
    assert users == ["alice@example.com", "bob@example.com", "system:serviceaccount:ci:deployer"]


def regrouped_for_self_escalation(events: list[dict]) -> list[dict]:
    """The events a worker with two partitions sends to the regroup topic for this correlation."""
    _, processor = two_partition_worker()
    correlator = processor.scanner.correlator
    out = []
    for event in events:
        correlator.process(event, "k8s_audit")
        if any(name == NAME for _, name in correlator.routes):
            out.append(event)
    return out


def test_cluster_scoped_and_non_resource_requests_are_not_regrouped_as_retries():
    """The retry must match the denial's namespace, and a denial without one starts no chain: an
    allowed request without a namespace (an access review, nodes, a list of namespaces, discovery) can take
    no step but the grant (a ClusterRoleBinding or ClusterRole write), and is not sent to the
    regroup topic. An allowed namespaced request is, reads included: `get secrets` denied, then
    granted, then allowed is the classic case."""
    atelier = read(ATELIER)
    kept = regrouped_for_self_escalation(atelier)
    assert [(e["verb"], e["objectRef"]["resource"]) for e in atelier if e not in kept] == [("create", "selfsubjectrulesreviews")]
    positives = read(EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
    assert regrouped_for_self_escalation(positives) == positives  # bob's ClusterRoleBinding is a grant
    alice = next(e for e in positives if e["user"]["username"] == "alice@example.com" and e["verb"] == "get")
    assert alice["annotations"]["authorization.k8s.io/decision"] == "forbid"
    allowed = dict(alice, annotations={"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
                   responseStatus={"metadata": {}, "code": 200})
    cluster_read = dict(allowed, requestURI="/api/v1/nodes", verb="list", objectRef={"resource": "nodes", "apiVersion": "v1"})
    discovery = {k: v for k, v in allowed.items() if k != "objectRef"}
    discovery.update(requestURI="/apis", verb="get")
    namespaces = dict(allowed, requestURI="/api/v1/namespaces", verb="list", objectRef={"resource": "namespaces", "apiVersion": "v1"})
    review = dict(allowed, requestURI="/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", verb="create",
                  objectRef={"resource": "selfsubjectaccessreviews", "apiGroup": "authorization.k8s.io", "apiVersion": "v1"})
    # a namespace itself is namespaced for the API server (objectRef.namespace is its name)
    namespace = dict(allowed, requestURI="/api/v1/namespaces/payments",
                     objectRef={"resource": "namespaces", "namespace": "payments", "name": "payments", "apiVersion": "v1"})
    assert regrouped_for_self_escalation([allowed, cluster_read, discovery, namespaces, review, namespace]) == [allowed, namespace]


def test_the_retry_must_name_the_denied_subresource(capsys, tmp_path):
    """The deployer's chain (a denied exec, a Role patch, the exec allowed) fires only while the
    retry names the same subresource as the denial: pods/exec is not pods, nor pods/attach."""
    deployer = [e for e in read(EVENTS / "k8s_audit_rbac_self_escalation.positive.jsonl")
                if e["user"]["username"] == "system:serviceaccount:ci:deployer"]
    denied = [e for e in deployer if e["responseStatus"]["code"] == 403]
    retries = [e for e in deployer if e["objectRef"].get("subresource") and e["responseStatus"]["code"] == 101]
    assert len(denied) == 1 and len(retries) == 2  # the exec's ResponseStarted and ResponseComplete

    def with_subresource(event: dict, subresource: str | None) -> dict:
        ref = {k: v for k, v in event["objectRef"].items() if k != "subresource"}
        if subresource:
            ref["subresource"] = subresource
        return dict(event, objectRef=ref)

    def alerts(denied_as: str | None, retried_as: str | None) -> list[dict]:
        events = [with_subresource(e, denied_as) if e in denied else with_subresource(e, retried_as) if e in retries else e
                  for e in deployer]
        return scan(capsys, write(tmp_path / f"{denied_as}-{retried_as}.jsonl", events))

    (alert,) = alerts("exec", "exec")
    assert "denied create pods/exec in namespace shop" in alert["output"]
    assert alert["output_fields"]["step.denied.ka.target.resource_subresource"] == "pods/exec"
    assert alerts(None, None) != []  # no subresource on either side: the same action
    assert alerts("exec", None) == []  # a denied exec, then a plain pod create
    assert alerts(None, "exec") == []  # a denied pod create, then an exec
    assert alerts("exec", "attach") == []
