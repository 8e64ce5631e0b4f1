"""No manifest stops the configuration audit: real manifests with values of the wrong type
(a string where the API expects an object, a number for a list) are audited, by
``peregrine audit`` and live from K8s audit events, without raising. Each of the fixed cases
below stopped ``peregrine audit`` with a traceback, and with it the audit of every other
object it was given. A Polaris config of any shape is either refused with an AuditError
naming the problem or used."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live_audit_events import audit_event
from pipeline.alerts.falco_json import canonical_bytes
from pipeline.audit.config import config_from_mapping, default_config
from pipeline.audit.evaluate import audit_objects
from pipeline.audit.fix import fix_objects
from pipeline.audit.live import RESOURCES, LiveAudit
from pipeline.audit.manifests import read_text
from pipeline.audit.report import findings_json
from pipeline.cli.main import main
from pipeline.errors import AuditError

DATA = Path(__file__).resolve().parents[1] / "data" / "manifests"
POLARIS_CONFIG = yaml.safe_load((DATA.parent / "polaris" / "config.yaml").read_text())
SEEDS = [doc for path in sorted(DATA.glob("*.yaml")) if path.name != "broken.yaml"
         for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
CONFIG = default_config()
KINDS = {kind: resource for resource, (_, kind) in RESOURCES.items()}

odd = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(), st.text(max_size=6),
                st.sampled_from(["", "inf%", "nan%", "1e400%", "50%", "ALL", "ClusterRole", "In", "Exists", "\x00"]),
                st.lists(st.sampled_from([None, 1, "x"]), max_size=2), st.builds(dict), st.fixed_dictionaries({"a": st.none()}))


def _paths(value, prefix=()):
    """Every path into ``value`` (dict keys and list positions)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _paths(item, prefix + (position,))


def _mutate(draw, obj, changes: int, min_depth: int) -> None:
    """Up to ``changes`` values anywhere in ``obj`` (at least ``min_depth`` keys deep) replaced by
    a value of any type, or removed; shallow paths (spec, roleRef, spec.selector: what the
    lookups read) as often as all of them."""
    for _ in range(changes):
        paths = [p for p in _paths(obj) if len(p) >= min_depth]
        if not paths:
            break
        shallow = [p for p in paths if len(p) <= 3]
        path = draw(st.sampled_from(draw(st.sampled_from([shallow or paths, paths]))))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(odd)


@st.composite
def manifests(draw) -> dict:
    """A real manifest with up to five values changed (kind, apiVersion and metadata stay
    objects: read_text checks those)."""
    obj = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    _mutate(draw, obj, draw(st.integers(1, 5)), min_depth=2)
    return obj


@st.composite
def polaris_configs(draw) -> dict:
    """The repo's Polaris config (severities, exemptions, custom checks) with up to four values changed."""
    config = copy.deepcopy(POLARIS_CONFIG)
    _mutate(draw, config, draw(st.integers(1, 4)), min_depth=1)
    return config


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=manifests())
def test_any_manifest_is_audited_offline_and_live_without_raising(obj):
    text = yaml.safe_dump(obj)
    found, _ = read_text(text, "fuzz.yaml")
    # with the repo's other manifests, so cross-object lookups (PDBs, HPAs, roles, policies) meet it
    objects = [m.obj for m in found] + copy.deepcopy(SEEDS)
    findings = audit_objects(objects, CONFIG)
    findings_json(findings)  # peregrine audit --format json
    fixed, _ = fix_objects(objects, findings, CONFIG.checks)  # --fix
    yaml.safe_dump_all(fixed)
    resource = KINDS.get(obj.get("kind"))
    if resource in ("pods", "deployments", "clusterroles", "replicasets", "configmaps", "cronjobs"):
        live = LiveAudit()
        live.alerts(audit_event("update", resource, name="fuzz", response=obj))
        assert live.counts["error"] == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=polaris_configs())
def test_any_polaris_config_is_refused_with_a_reason_or_used(config):
    try:
        loaded = config_from_mapping(config, "polaris.yaml")
    except AuditError as error:
        assert str(error).startswith("polaris.yaml")
        return
    audit_objects(copy.deepcopy(SEEDS), loaded)


def test_exemptions_that_are_not_a_list_are_refused():
    """``exemptions: 1`` raised TypeError from the config loader."""
    with pytest.raises(AuditError, match="polaris.yaml: exemptions must be a list"):
        config_from_mapping({"exemptions": 1}, "polaris.yaml")


MALFORMED = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": "\x00"},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p", "namespace": "shop"}, "spec": "x"},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p2", "namespace": "shop"},
     "spec": {"minAvailable": "inf%", "selector": {"matchLabels": {}}}},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p3", "namespace": "shop"},
     "spec": {"selector": {"matchLabels": 3, "matchExpressions": ["x"]}}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "shop"}, "spec": 7},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h2", "namespace": "shop"},
     "spec": {"minReplicas": 1, "maxReplicas": 3, "scaleTargetRef": "api"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n", "namespace": "shop"},
     "spec": {"podSelector": {}, "policyTypes": 5}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n2", "namespace": "shop"}, "spec": []},
]


def test_malformed_related_objects_leave_the_other_objects_audited(tmp_path, capsys):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all([*MALFORMED, *SEEDS]))
    code = main(["audit", "--format", "json", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    assert "Traceback" not in captured.err
    assert '"runAsPrivileged"' in captured.out  # the privileged pod among the seeds is still judged


def test_wide_integers_have_a_canonical_form():
    """Only a Python-built object (or YAML) has one; an alert id must still be computable."""
    assert canonical_bytes({"b": 2 ** 70, "a": [-(2 ** 64)]}) == b'{"a":["-18446744073709551616"],"b":"1180591620717411303424"}'
    assert canonical_bytes({"b": 1, "a": 2 ** 64 - 1}) == b'{"a":18446744073709551615,"b":1}'


def test_fix_leaves_a_malformed_object_as_it_is_and_counts_only_what_it_fixed(tmp_path, capsys):
    """A pod template that is a list (or a pod spec that is one) has no place for the mutations:
    ``--fix`` raised ValueError on it; now the object is written back unchanged, uncounted."""
    broken = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "log-shipper", "namespace": "logging"},
              "spec": {"selector": {"matchLabels": {"app": "log-shipper"}}, "template": []}}
    privileged = next(doc for doc in SEEDS if doc["kind"] == "Pod")
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump_all([broken, privileged]))
    code = main(["audit", "--fix", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 1, 3) and "Traceback" not in captured.err
    documents = list(yaml.safe_load_all(captured.out))
    assert documents[0] == broken  # unchanged
    assert documents[1] != privileged  # the pod was fixed
    fixed = int(captured.err.split("fixed ")[1].split(" ")[0])
    findings = audit_objects([copy.deepcopy(privileged)], CONFIG)
    fixable = {c.id for c in CONFIG.checks if c.mutations}
    assert fixed == len({(f.check, f.pointer) for f in findings if not f.success and f.check in fixable})


@pytest.mark.parametrize("quantity", ["1e9999999", float("nan"), float("inf")])
def test_a_quantity_out_of_range_is_judged_not_a_failure_of_the_checks(quantity):
    """A limit of '1e9999999' (decimal.Overflow) or .nan stopped every check of the pod: live,
    only a log line (the pod was not audited at all); offline, `peregrine audit` exited 2."""
    pod = copy.deepcopy(next(obj for obj in SEEDS if obj.get("kind") == "Pod"))
    pod["spec"]["containers"][0].setdefault("resources", {})["limits"] = {"cpu": quantity, "memory": "64Mi"}
    findings = audit_objects([pod], CONFIG)
    assert {finding.check for finding in findings}  # judged
    live = LiveAudit()
    live.alerts(audit_event("create", "pods", name=pod["metadata"]["name"], response=pod))
    assert live.counts["error"] == 0


def test_an_audit_event_whose_resource_is_not_text_does_not_apply():
    """objectRef.resource = ["pods"] made the live audit raise (unhashable), and the event's
    rules' alerts were lost with it as an evaluation error."""
    event = audit_event("create", "pods", name="p", response=next(obj for obj in SEEDS if obj.get("kind") == "Pod"))
    event["objectRef"]["resource"] = ["pods"]
    assert LiveAudit().alerts(event) == []
    event["objectRef"]["resource"], event["verb"] = "pods", ["create"]
    assert LiveAudit().alerts(event) == []


def test_yaml_nested_too_deep_for_the_parser_is_an_unreadable_document():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n" + "[" * 5000 + "]" * 5000 + "\n"
    found, problems = read_text(text, "deep.yaml")
    assert [m.obj["metadata"]["name"] for m in found] == ["a"]
    assert [p.message for p in problems] == ["not YAML Peregrine can read: nested too deep (from line 5)"]


def test_a_pod_of_thousands_of_containers_gets_one_alert_per_failed_check():
    """A create of a pod with 12K containers made 156K Polaris alerts in one event."""
    from pipeline.audit.live import MAX_ALERTS_PER_OBJECT

    pod = copy.deepcopy(next(obj for obj in SEEDS if obj.get("kind") == "Pod"))
    template = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = [dict(copy.deepcopy(template), name=f"c{n}") for n in range(2000)]
    alerts = LiveAudit().alerts(audit_event("create", "pods", name=pod["metadata"]["name"], response=pod))
    checks = [alert.output_fields["polaris.check"] for alert in alerts]
    assert len(checks) == len(set(checks)) <= MAX_ALERTS_PER_OBJECT  # one per check
    per_container = [alert for alert in alerts if alert.output_fields["polaris.container"]]
    assert per_container and all(alert.output_fields["polaris.container"] == "c0 and 1999 more containers" for alert in per_container)
    small = copy.deepcopy(pod)
    small["spec"]["containers"] = small["spec"]["containers"][:3]  # a normal pod: one alert per container and check
    assert len(LiveAudit().alerts(audit_event("create", "pods", name="p3", response=small))) > len(set(checks))
