"""The stored alert document: Falco's JSON plus the context keywords analysts group by."""

from __future__ import annotations

import orjson

from pipeline.alerts.alert import Alert
from pipeline.alerts.falco_json import falco_json_dict
from pipeline.rules.model import Priority
from pipeline.sinks.document import alert_context, alert_document


def _alert(fields: dict) -> Alert:
    return Alert(uuid="u-1", time_ns=1_700_000_000_000_000_001, rule="R", priority=Priority.parse("warning"),
                 source="syscall", output="o", message="m", output_fields=fields, tags=("t",), hostname="h")


def test_syscall_fields_become_context_keywords() -> None:
    fields = {"container.id": "abc123", "container.image.repository": "nginx", "k8s.ns.name": "web",
              "k8s.pod.name": "front-1", "user.name": "root", "proc.name": "bash", "evt.time": 1}
    assert alert_context(fields) == {"container_id": "abc123", "image": "nginx", "namespace": "web",
                                     "pod": "front-1", "user": "root", "process": "bash"}


def test_k8s_audit_fields_fall_back_in_order_and_a_pod_name_only_for_pods() -> None:
    pod = {"ka.target.namespace": "web", "ka.target.name": "debug", "ka.target.resource": "pods",
           "ka.user.name": "alice", "ka.req.pod.containers.image": ["busybox", "nginx"]}
    assert alert_context(pod) == {"namespace": "web", "pod": "debug", "user": "alice", "image": "busybox"}
    deployment = dict(pod, **{"ka.target.resource": "deployments"})
    assert "pod" not in alert_context(deployment)


def test_a_pod_name_from_the_fields_falcos_pod_rules_print() -> None:
    """Falco's Create Privileged Pod prints the pod as ka.resp.name (with ka.target.resource), and
    ka.target.pod.name is the pod's name only for pods: context.pod stayed empty for them."""
    falco = {"ka.target.namespace": "web", "ka.target.resource": "pods", "ka.resp.name": "debug", "ka.user.name": "alice"}
    assert alert_context(falco)["pod"] == "debug"
    assert "pod" not in alert_context(dict(falco, **{"ka.target.resource": "deployments"}))
    assert alert_context({"ka.target.pod.name": "debug"}) == {"pod": "debug"}


def test_missing_and_na_values_are_left_out() -> None:
    assert alert_context({"container.id": None, "user.name": "<NA>", "proc.name": ""}) == {}


def test_a_correlation_group_supplies_what_the_output_lacks() -> None:
    fields = {"corr.group": {"container.id": "c9"}, "corr.group_key": "container.id=c9", "proc.name": "java"}
    assert alert_context(fields) == {"container_id": "c9", "process": "java", "group_key": "container.id=c9"}


def test_the_document_is_falco_json_plus_context() -> None:
    alert = _alert({"container.id": "abc", "proc.name": "sh"})
    document = orjson.loads(alert_document(alert))
    assert document.pop("context") == {"container_id": "abc", "process": "sh"}
    assert document == orjson.loads(orjson.dumps(falco_json_dict(alert)))
    assert "context" not in orjson.loads(alert_document(_alert({"evt.time": 1})))
