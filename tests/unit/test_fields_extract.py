"""Extraction, coercion, fallbacks, detection and schemas of the real field registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import EventError, PeregrineError
from pipeline.fields import SOURCES, UnknownSource, detect_source, registry_for, unwrap_falco_alert
from pipeline.fields.registry import MISSING, UnknownField
from pipeline.fields.schema import validate_event

DATA = Path(__file__).resolve().parent.parent / "data" / "k8s_audit"


def value(source, name, event, arg=None):
    return registry_for(source).bind(name, arg).extract(event)


def sys(name, event, arg=None):
    return value("syscall", name, event, arg)


def ka(name, fixture, arg=None):
    return value("k8s_audit", name, json.loads((DATA / fixture).read_text()), arg)


def test_registry_for_is_cached_and_rejects_unknown_sources():
    assert registry_for("syscall") is registry_for("syscall")
    with pytest.raises(UnknownSource, match="known sources: syscall, k8s_audit, aws_cloudtrail"):
        registry_for("gcp_audit")
    assert issubclass(UnknownSource, PeregrineError) and issubclass(UnknownSource, LookupError)
    assert SOURCES == ("syscall", "k8s_audit", "aws_cloudtrail")


def test_syscall_string_fields_are_inlinable_and_typed_fields_coerce():
    bound = registry_for("syscall").bind("proc.name")
    assert bound.flat_key == "proc.name"
    event = {"proc.name": "cat", "proc.pid": "42", "user.uid": 0, "container.privileged": "true", "fd.rport": "<NA>", "proc.tty": [1]}
    assert sys("proc.name", event) == "cat"
    assert sys("proc.pid", event) == 42
    assert sys("user.uid", event) == 0
    assert sys("container.privileged", event) is True
    assert sys("fd.rport", event) is MISSING
    assert sys("proc.tty", event) is MISSING
    assert sys("fd.name", event) is MISSING


def test_ancestors_with_and_without_index():
    event = {"proc.name": "sh", "proc.pname": "bash", "proc.aname[2]": "sshd", "proc.ppid": "7"}
    assert sys("proc.aname", event, "0") == "sh"
    assert sys("proc.aname", event, "1") == "bash"
    assert sys("proc.aname", event, "2") == "sshd"
    assert sys("proc.aname", event, "3") is MISSING
    every = registry_for("syscall").bind("proc.aname")
    assert every.is_list and every.any_of and every.extract(event) == ["bash", "sshd"]
    assert not registry_for("syscall").bind("proc.name").any_of
    assert registry_for("syscall").bind("proc.aname", "2").is_list is False
    assert sys("proc.apid", event, "1") == 7
    with pytest.raises(UnknownField):
        registry_for("syscall").bind("proc.aname", "x")


def test_event_args_by_name_index_and_raw():
    event = {"evt.arg.mode": "0755", "evt.arg[0]": "3", "evt.arg.uid": 0, "evt.rawarg.res": "-2"}
    assert sys("evt.arg.mode", event) == "0755"
    assert sys("evt.arg", event, "mode") == "0755"
    assert sys("evt.arg", event, "0") == "3"
    assert sys("evt.arg.uid", event) == "0"  # evt.arg is text in Falco
    assert sys("evt.rawarg.res", event) == -2
    assert sys("evt.rawarg.mode", event) is MISSING  # only evt.arg.mode is sent: its text is not the raw value
    with pytest.raises(UnknownField):
        registry_for("syscall").bind("evt.arg")


def test_env_mounts_fd_types_and_time():
    event = {
        "proc.env": "PATH=/bin HOME=/root",
        "container.mounts": "/var/run/docker.sock:/run/docker.sock:rw:true:rprivate,/data:/mnt:ro:false:private",
        "fd.types": "(ipv4,file)",
        "evt.time": 1714557600123456789,
    }
    assert sys("proc.env", event) == "PATH=/bin HOME=/root"
    assert sys("proc.env", event, "HOME") == "/root"
    assert sys("proc.env", {"proc.env": ["A=1", "HOME=/h"]}, "HOME") == "/h"
    assert sys("container.mount.dest", event, "/var/run/docker.sock") == "/run/docker.sock"
    assert sys("container.mount.dest", event, "/proc*") is MISSING
    assert sys("container.mount.source", event, "/mnt") == "/data"
    assert sys("fd.types", event) == ["ipv4", "file"]
    assert sys("evt.time", event) == 1714557600123456789
    assert sys("evt.time", {"evt.time": "2024-05-01T10:00:00.123456789Z"}) == 1714557600123456789
    assert sys("evt.time.iso8601", event) == "2024-05-01T10:00:00.123456789Z"


def test_privileged_pod_create():
    f = "privileged_pod_create.json"
    assert ka("ka.verb", f) == "create"
    assert ka("ka.user.groups", f) == ["dev", "system:authenticated"]
    assert ka("ka.req.pod.containers.privileged", f) == [True]
    assert ka("ka.req.pod.initContainers.privileged", f) == [False]
    assert ka("ka.req.pod.containers.image.repository", f) == ["docker.io/library/nginx", "busybox"]
    assert ka("ka.req.pod.host_pid", f) is True
    assert ka("ka.req.pod.host_network", f) is MISSING
    assert ka("ka.req.pod.containers.host_port", f) == [8080]
    assert ka("ka.req.pod.containers.eff_run_as_user", f) == [1000, 0]
    assert ka("ka.req.pod.containers.add_capabilities", f) == ["SYS_ADMIN"]
    assert ka("ka.req.pod.volumes.hostpath", f) == ["/etc"]
    assert ka("ka.req.volume.hostpath", f, "/etc") is True
    assert ka("ka.req.pod.volumes.volume_type", f) == ["hostPath", "configMap"]
    assert ka("ka.response.code", f) == "201"
    assert ka("ka.auth.decision", f) == "allow"
    assert ka("ka.resp.name", f) == "evil"
    assert ka("jevt.value", f, "/requestObject/spec/containers/1/image") == "busybox"
    assert ka("jevt.value", f, "/nope") is MISSING
    assert ka("jevt.rawtime", f) == 1714557600123456000


def test_exec_binding_and_configmap():
    assert ka("ka.target.subresource", "exec_into_pod.json") == "exec"
    assert ka("ka.uri.param", "exec_into_pod.json", "command") == "sh"
    assert ka("ka.target.pod.name", "exec_into_pod.json") == "web-0"
    assert ka("ka.req.binding.role", "clusterrolebinding_cluster_admin.json") == "cluster-admin"
    assert ka("ka.req.binding.subjects", "clusterrolebinding_cluster_admin.json") == ["default", "mallory"]
    assert ka("ka.req.binding.subject.has_name", "clusterrolebinding_cluster_admin.json", "mallory") is True
    assert "aws_secret_access_key" in ka("ka.req.configmap.obj", "configmap_with_secret.json")
    assert ka("ka.req.configmap.name", "configmap_with_secret.json") == "app-config"
    assert ka("ka.req.configmap.name", "exec_into_pod.json") is MISSING


def test_resource_with_its_subresource():
    """Peregrine's ka.target.resource_subresource: one value for what RBAC and audit policies call
    the resource, so a correlation can bind it (an absent subresource never matches a binding)."""
    assert ka("ka.target.resource_subresource", "exec_into_pod.json") == "pods/exec"
    assert ka("ka.target.resource_subresource", "privileged_pod_create.json") == "pods"
    assert ka("ka.target.resource_subresource", "clusterrolebinding_cluster_admin.json") == "clusterrolebindings"
    event = json.loads((DATA / "exec_into_pod.json").read_text())
    event["objectRef"]["subresource"] = ""
    assert value("k8s_audit", "ka.target.resource_subresource", event) == "pods"
    del event["objectRef"]
    event["requestURI"] = "/apis"
    assert value("k8s_audit", "ka.target.resource_subresource", event) is MISSING  # a non-resource URL
    assert value("k8s_audit", "ka.target.resource", event) is MISSING


def test_cloudtrail_fields():
    record = {
        "eventVersion": "1.08", "eventSource": "s3.amazonaws.com", "eventName": "PutBucketPolicy", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T10:00:00Z", "eventID": "e1", "sourceIPAddress": "1.2.3.4", "readOnly": False,
        "userIdentity": {"type": "IAMUser", "userName": "dave", "accountId": "123", "arn": "arn:aws:iam::123:user/dave"},
        "requestParameters": {"bucketName": "b", "userName": "eve"}, "additionalEventData": {"MFAUsed": "No"},
    }
    ct = lambda name, arg=None: value("aws_cloudtrail", name, record, arg)  # noqa: E731
    assert ct("ct.user") == "dave" and ct("ct.shortsrc") == "s3" and ct("ct.region") == "us-east-1"
    assert ct("ct.readonly") is False and ct("ct.error") is MISSING
    assert ct("ct.request.username") == "eve" and ct("s3.bucket") == "b"
    assert ct("ct.additionaleventdata.mfaused") == "No"
    assert ct("json.value", "/additionalEventData/MFAUsed") == "No"
    assert ct("evt.time.iso8601") == "2024-05-01T10:00:00.000000000Z"


def test_extractors_never_raise_on_odd_events():
    odd = [{}, {"requestObject": "x"}, {"requestObject": {"spec": {"containers": "no"}}}, {"userIdentity": 3}, {"proc.env": 5}]
    for source in SOURCES:
        for definition in registry_for(source).definitions():
            arg = {"optional_index": None, "none": None, "json_pointer": "/a/0"}.get(definition.arg.value, "1")
            for event in odd:
                registry_for(source).bind(definition.name, arg).extract(event)


def test_detect_source():
    assert detect_source(json.loads((DATA / "exec_into_pod.json").read_text())) == "k8s_audit"
    assert detect_source({"eventVersion": "1.08", "eventSource": "iam.amazonaws.com", "eventName": "X"}) == "aws_cloudtrail"
    assert detect_source({"evt.type": "open"}) == "syscall"
    assert detect_source({"proc.name": "sh"}) == "syscall"
    assert detect_source({"kind": "Event", "apiVersion": "v1"}) is None
    assert detect_source([1]) is None
    alert = {"rule": "r", "source": "syscall", "output_fields": {"evt.type": "open"}}
    assert unwrap_falco_alert(alert) == ({"evt.type": "open"}, "syscall")
    assert unwrap_falco_alert({"evt.type": "open"}) is None


def test_schemas_accept_good_and_reject_bad_events():
    validate_event({"evt.type": "open", "evt.time": 1, "container.id": "host"}, "syscall")
    validate_event(json.loads((DATA / "privileged_pod_create.json").read_text()), "k8s_audit")
    validate_event({"eventVersion": "1.08", "eventSource": "s3", "eventName": "X", "eventTime": "t"}, "aws_cloudtrail")
    with pytest.raises(EventError, match="'evt.time' is a required property"):
        validate_event({"evt.type": "open", "container.id": "host"}, "syscall")
    with pytest.raises(EventError, match="at stage"):
        validate_event({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "stage": "Done", "verb": "get"}, "k8s_audit")
    with pytest.raises(EventError):
        validate_event([], "aws_cloudtrail")
    with pytest.raises(UnknownSource):
        validate_event({}, "nope")


def test_a_json_patch_request_fits_the_k8s_audit_schema():
    """kube-apiserver records a request's body as it came: a JSON Patch (``kubectl patch
    --type=json``) makes requestObject an array. The worker dead-lettered such events, a
    Role patched to grant its own user more (RBAC self-escalation's grant) among them."""
    event = json.loads((DATA / "privileged_pod_create.json").read_text())
    event.update(verb="patch", requestObject=[{"op": "add", "path": "/rules/-", "value": {"resources": ["pods/exec"]}}])
    validate_event(event, "k8s_audit")
    assert value("k8s_audit", "ka.req.role.rules", event) is MISSING
    with pytest.raises(EventError, match="at requestObject"):
        validate_event(dict(event, requestObject="not a body"), "k8s_audit")


def test_the_native_fast_path_promise_holds_for_every_syscall_field():
    """Where a binding offers native_key/native_class, a value of that class under that key
    (other than native_except) is exactly what the extractor returns, for every field."""
    from pipeline.fields.registry import ArgKind

    registry = registry_for("syscall")
    samples = {int: [0, 7, -1, 1714564800123456789], bool: [True, False], str: ["bash", "", "/etc/passwd", "0755(S_IXUSR)"]}
    checked = 0
    for definition in registry.definitions():
        args = {ArgKind.NONE: [None], ArgKind.OPTIONAL_INDEX: [None, "0", "1", "3"], ArgKind.REQUIRED_INDEX: ["0"],
                ArgKind.REQUIRED_KEY: ["mode"], ArgKind.KEY_OR_INDEX: ["mode", "0"], ArgKind.JSON_POINTER: ["/a"]}[definition.arg]
        for arg in args:
            bound = registry.bind(definition.name, arg)
            if bound.native_key is None:
                continue
            for value in samples[bound.native_class]:
                assert bound.extract({bound.native_key: value}) == value, (bound.key, value)
                assert bound.extract({bound.native_key: value}).__class__ is bound.native_class
            if bound.native_except is not None:
                assert bound.extract({bound.native_key: bound.native_except}) is MISSING
            checked += 1
    assert checked > 50
