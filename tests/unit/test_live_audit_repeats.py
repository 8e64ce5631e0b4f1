"""Live audit reports an object's failures once: the same content applied again is not news.

The noise this removes is real: after a user applies a Deployment, the deployment controller
updates the same object to set its ``deployment.kubernetes.io/revision`` annotation (an
``update`` of the resource itself, not of a subresource), and operators add labels and
finalizers; each of those audit events carries the whole, still failing, object."""

from __future__ import annotations

import copy

from live_audit_events import as_request, audit_event, hardened_deployment, hardened_pod, privileged_pod
from pipeline.audit.live import LiveAudit

PRIVILEGED = "Polaris runAsPrivileged: Should not be running as privileged"
HOST_NETWORK = "Polaris hostNetworkSet: Host network should not be configured"


def privileged_deployment(name: str = "api") -> dict:
    deployment = hardened_deployment(name)
    deployment["metadata"]["uid"] = "5a1c0e2b-0000-4000-8000-00000000d001"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    return deployment


def applied(obj: dict, verb: str = "update", audit_id: str = "a-1", user: str = "alice@example.com") -> dict:
    resource = {"Pod": "pods", "Deployment": "deployments"}[obj["kind"]]
    return audit_event(verb, resource, name=obj["metadata"]["name"], request=as_request(obj), response=obj,
                       audit_id=audit_id, user=user)


def revision_annotated(deployment: dict, revision: str) -> dict:
    """What the deployment controller writes back after an apply: the same object, one annotation more."""
    out = copy.deepcopy(deployment)
    out["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
    out["metadata"]["resourceVersion"] = str(int(out["metadata"]["resourceVersion"]) + 1)
    out["status"] = {"observedGeneration": out["metadata"]["generation"], "replicas": 3, "updatedReplicas": 1}
    return out


def rules(alerts) -> list[str]:
    return sorted(a.rule for a in alerts)


def test_a_controllers_metadata_update_and_an_identical_reapply_are_not_reported_again():
    live = LiveAudit()
    deployment = privileged_deployment()
    assert rules(live.alerts(applied(deployment, "create", "a-1"))) == [PRIVILEGED]
    assert live.alerts(audit_event("update", "deployments", name="api", response=revision_annotated(deployment, "1"),
                                   request=as_request(revision_annotated(deployment, "1")), audit_id="a-2",
                                   user="system:serviceaccount:kube-system:deployment-controller")) == []
    assert live.alerts(applied(deployment, "patch", "a-3")) == []  # kubectl apply of the same manifest
    assert live.counts == {"audited": 1, "unchanged": 2}


def test_a_changed_spec_that_still_fails_is_reported_again_by_whoever_applied_it():
    live = LiveAudit()
    deployment = privileged_deployment()
    live.alerts(applied(deployment, "create", "a-1"))
    changed = copy.deepcopy(deployment)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example:5000/shop/api:1.4.3"
    alerts = live.alerts(applied(changed, "patch", "a-2", user="bob@example.com"))
    assert rules(alerts) == [PRIVILEGED]
    assert alerts[0].output_fields["ka.user.name"] == "bob@example.com"
    assert live.counts == {"audited": 2}


def test_a_new_failure_reports_all_the_objects_failures_and_a_fix_then_a_regression_reports_again():
    live = LiveAudit()
    deployment = privileged_deployment()
    live.alerts(applied(deployment, "create", "a-1"))
    worse = copy.deepcopy(deployment)
    worse["spec"]["template"]["spec"]["hostNetwork"] = True
    assert rules(live.alerts(applied(worse, audit_id="a-2"))) == [HOST_NETWORK, PRIVILEGED]  # the new one, and the old one again
    assert live.alerts(applied(worse, audit_id="a-3")) == []
    fixed = hardened_deployment("api")
    fixed["metadata"]["uid"] = deployment["metadata"]["uid"]
    assert live.alerts(applied(fixed, audit_id="a-4")) == []
    assert rules(live.alerts(applied(deployment, audit_id="a-5"))) == [PRIVILEGED]  # broken again: news
    assert live.counts == {"audited": 4, "unchanged": 1}


def test_an_object_deleted_and_created_again_is_a_new_object():
    live = LiveAudit()
    pod = privileged_pod("debug")
    assert rules(live.alerts(applied(pod, "create", "a-1"))) == [PRIVILEGED]
    again = copy.deepcopy(pod)
    again["metadata"]["uid"] = "9f9f9f9f-0000-4000-8000-000000000002"
    assert rules(live.alerts(applied(again, "create", "a-2"))) == [PRIVILEGED]
    # another namespace's pod of the same name and spec is another object
    elsewhere = privileged_pod("debug", "payments")
    assert rules(live.alerts(audit_event("create", "pods", name="debug", namespace="payments", response=elsewhere))) == [PRIVILEGED]


def test_remember_zero_reports_every_event_and_the_memory_forgets_the_least_recently_seen():
    every = LiveAudit(remember=0)
    pod = privileged_pod("debug")
    assert [len(every.alerts(applied(pod, audit_id=f"a-{i}"))) for i in range(3)] == [1, 1, 1]

    live = LiveAudit(remember=2)
    pods = [privileged_pod(name) for name in ("one", "two", "three")]
    for pod in pods:
        assert len(live.alerts(applied(pod, "create"))) == 1
    assert live.alerts(applied(pods[2])) == [] and live.alerts(applied(pods[1])) == []
    assert len(live.alerts(applied(pods[0]))) == 1  # forgotten: the third object pushed it out
    assert len(live._reported) == 2


def test_a_request_object_named_by_the_server_is_never_taken_for_an_earlier_one():
    live = LiveAudit()
    pod = privileged_pod("debug")
    request = as_request(pod)
    del request["metadata"]["name"]
    request["metadata"]["generateName"] = "debug-"
    events = [audit_event("create", "pods", name="", request=request, level="Request", audit_id=f"a-{i}") for i in range(2)]
    first, second = (rules(live.alerts(e)) for e in events)
    assert PRIVILEGED in first and second == first


def test_a_passing_object_is_not_remembered():
    live = LiveAudit()
    for i in range(3):
        assert live.alerts(applied(hardened_pod(f"api-{i}"), "create")) == []
    assert live.counts == {"audited": 3} and len(live._reported) == 0
