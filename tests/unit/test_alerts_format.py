"""Falco's alert format: text output, JSON keys and values, time, <NA>, uuid."""

from __future__ import annotations

import orjson
import pytest

from pipeline.alerts import AlertBuilder, OutputFormat, alert_uuid, falco_json, iso8601_ns
from pipeline.alerts.falco_json import event_time_ns, parse_rfc3339_ns
from pipeline.alerts.output import clock_ns
from pipeline.errors import RuleLoadError
from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldDef, FieldRegistry, FieldType
from pipeline.rules.model import Priority, Rule
from pipeline.rules.parser import parse_condition

FIELDS = [
    FieldDef("proc.name", FieldType.STRING),
    FieldDef("proc.cmdline", FieldType.STRING),
    FieldDef("proc.tty", FieldType.INT),
    FieldDef("user.name", FieldType.STRING),
    FieldDef("container.privileged", FieldType.BOOL),
    FieldDef("proc.aname", FieldType.STRING, arg=ArgKind.OPTIONAL_INDEX),
    FieldDef("evt.arg", FieldType.STRING, arg=ArgKind.KEY_OR_INDEX),
    FieldDef("ka.groups", FieldType.STRING, is_list=True),
    FieldDef("jevt.value", FieldType.STRING, arg=ArgKind.JSON_POINTER),
]


def _bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    if definition.name == "jevt.value":
        def extract(e, parts=arg.strip("/").split("/")):
            value = e
            for part in parts:
                if not isinstance(value, dict) or part not in value:
                    return MISSING
                value = value[part]
            return value
        return BoundField(definition, arg, key, extract)
    flat = definition.name if arg is None else (f"{definition.name}.{arg}" if definition.name == "evt.arg" else f"{definition.name}[{arg}]")
    return BoundField(definition, arg, key, lambda e: e.get(flat, MISSING), flat_key=flat)


REGISTRY = FieldRegistry("syscall", FIELDS, _bind)
T = 1_714_564_800_123_456_789  # 2024-05-01T12:00:00.123456789Z


def registry_for(source: str) -> FieldRegistry:
    if source != "syscall":
        raise LookupError(source)
    return REGISTRY


def rule(name: str = "Shell", output: str = "shell (user=%user.name cmd=%proc.cmdline)", priority: Priority = Priority.NOTICE) -> Rule:
    return Rule(name, "d", parse_condition("proc.name = bash"), "proc.name = bash", output, priority, tags=("shell", "T1059", "container"))


EVENT = {"evt.time": T, "proc.name": "bash", "proc.cmdline": "bash -i", "user.name": "root", "proc.tty": 34816,
         "container.privileged": False, "proc.aname[2]": "runc", "evt.arg.mode": "0755(S_IXUSR)", "ka.groups": ["a", "b"]}


def test_time_formats_keep_nanoseconds():
    assert iso8601_ns(T) == "2024-05-01T12:00:00.123456789Z"
    assert clock_ns(T) == "12:00:00.123456789"
    assert iso8601_ns(1_000_000_007) == "1970-01-01T00:00:01.000000007Z"
    assert parse_rfc3339_ns("2024-05-01T12:00:00.123456Z") == 1_714_564_800_123_456_000
    assert parse_rfc3339_ns("2024-05-01T14:00:00.5+02:00") == 1_714_564_800_500_000_000
    assert parse_rfc3339_ns("yesterday") is None


def test_event_time_per_source():
    assert event_time_ns({"evt.time": T}, "syscall") == T
    audit = {"requestReceivedTimestamp": "2024-05-01T12:00:00.000001Z", "stageTimestamp": "2024-05-01T12:00:00.123456Z"}
    assert event_time_ns(audit, "k8s_audit") == 1_714_564_800_123_456_000
    assert event_time_ns({"requestReceivedTimestamp": "2024-05-01T12:00:00.000001Z"}, "k8s_audit") == 1_714_564_800_000_001_000
    assert event_time_ns({"eventTime": "2024-05-01T12:00:00Z"}, "aws_cloudtrail") == 1_714_564_800_000_000_000
    assert event_time_ns({}, "syscall") > T  # now


def test_output_values_text_and_json():
    fmt = OutputFormat("%proc.name tty=%proc.tty priv=%container.privileged a2=%proc.aname[2] mode=%evt.arg.mode "
                       "groups=%ka.groups x=%jevt.value[/x/y] none=%user.name 100%% at %evt.time", REGISTRY)
    text, fields = fmt.render({**EVENT, "x": {"y": 7}, "user.name": None}, T)
    assert text == ("bash tty=34816 priv=false a2=runc mode=0755(S_IXUSR) groups=(a,b) x=7 none=<NA> 100% at 12:00:00.123456789")
    assert fields == {"proc.name": "bash", "proc.tty": 34816, "container.privileged": False, "proc.aname[2]": "runc",
                      "evt.arg.mode": "0755(S_IXUSR)", "ka.groups": ["a", "b"], "jevt.value[/x/y]": 7, "user.name": None,
                      "evt.time": T}
    assert fmt.field_keys[0] == "proc.name"


def test_missing_fields_are_na_in_text_and_null_in_json():
    text, fields = OutputFormat("u=%user.name m=%evt.arg.mode", REGISTRY).render({}, T)
    assert text == "u=<NA> m=<NA>"
    assert fields == {"user.name": None, "evt.arg.mode": None}


def test_unknown_output_field_is_a_rule_error():
    with pytest.raises(RuleLoadError, match="nope.field"):
        OutputFormat("x=%nope.field", REGISTRY)


def test_falco_json_exact():
    alert = AlertBuilder(registry_for, hostname="node-a").build(rule(), EVENT, "syscall")
    expected = {
        "hostname": "node-a",
        "output": "12:00:00.123456789: Notice shell (user=root cmd=bash -i)",
        "output_fields": {"evt.time": T, "proc.cmdline": "bash -i", "user.name": "root"},
        "priority": "Notice",
        "rule": "Shell",
        "source": "syscall",
        "tags": ["T1059", "container", "shell"],
        "time": "2024-05-01T12:00:00.123456789Z",
        "uuid": alert_uuid(EVENT, "Shell"),
    }
    line = falco_json(alert)
    assert orjson.loads(line) == expected
    assert list(orjson.loads(line)) == sorted(expected)  # keys sorted, as Falco writes them
    assert line.startswith(b'{"hostname":"node-a","output":"12:00:00.123456789: Notice shell')
    assert alert.message == "shell (user=root cmd=bash -i)"


@pytest.mark.parametrize("priority,label", [(Priority.EMERGENCY, "Emergency"), (Priority.INFO, "Informational"), (Priority.DEBUG, "Debug"), (Priority.WARNING, "Warning")])
def test_priority_labels(priority, label):
    alert = AlertBuilder(registry_for, hostname="h").build(rule(priority=priority), EVENT, "syscall")
    assert orjson.loads(falco_json(alert))["priority"] == label
    assert alert.output.startswith(f"12:00:00.123456789: {label} ")


def test_uuid_is_stable_and_distinguishes_rules_and_events():
    reordered = dict(reversed(list(EVENT.items())))
    assert alert_uuid(EVENT, "Shell") == alert_uuid(reordered, "Shell")
    assert alert_uuid(EVENT, "Shell") != alert_uuid(EVENT, "Other")
    assert alert_uuid(EVENT, "Shell") != alert_uuid({**EVENT, "proc.tty": 1}, "Shell")
    builder = AlertBuilder(registry_for, hostname="h")
    assert builder.build(rule(), EVENT, "syscall").uuid == builder.build(rule(), reordered, "syscall").uuid


def test_format_compiled_once_per_output():
    builder = AlertBuilder(registry_for, hostname="h")
    assert builder.output_format("syscall", "x %proc.name") is builder.output_format("syscall", "x %proc.name")


def test_an_ancestor_field_without_index_prints_the_process_itself_as_falco_does():
    """In a condition `proc.aname` means any ancestor; in an output libsinsp extracts it with
    no ancestor step taken: the process's own name (and `proc.apid` its pid)."""
    from pipeline.fields import registry_for

    fmt = OutputFormat("a=%proc.aname p=%proc.apid g=%proc.aname[2]", registry_for("syscall"))
    event = {"proc.name": "sh", "proc.pname": "bash", "proc.aname[2]": "sshd", "proc.pid": 5, "proc.ppid": 4}
    assert fmt.render(event, 0) == ("a=sh p=5 g=sshd", {"proc.aname": "sh", "proc.apid": 5, "proc.aname[2]": "sshd"})


def test_transformers_in_an_output_as_falco_prints_them():
    """Falco's outputs take `%toupper(user.name)`; Peregrine refused the rule (unknown field 'toupper')."""
    fmt = OutputFormat("u=%toupper(user.name) b=%basename(tolower(evt.arg.mode)) n=%len(proc.name) "
                       "t=%toupper(user.name x=%b64(proc.name)", REGISTRY)
    text, fields = fmt.render({**EVENT, "user.name": "root", "proc.name": "YmFzaA=="}, T)
    assert text == "u=ROOT b=0755(s_ixusr) n=8 t=%toupper(user.name x=bash"  # an unclosed call is text
    assert fields == {"toupper(user.name)": "ROOT", "basename(tolower(evt.arg.mode))": "0755(s_ixusr)", "len(proc.name)": 8,
                      "b64(proc.name)": "bash"}
    assert fmt.render({**EVENT, "user.name": None}, T)[1]["toupper(user.name)"] is None  # missing: <NA> / null
    with pytest.raises(RuleLoadError, match="nope.field"):
        OutputFormat("x=%toupper(nope.field)", REGISTRY)


def test_a_rule_whose_output_has_transformers_loads(tmp_path):
    from pipeline.fields import registry_for
    from pipeline.rules.loader import load_rules

    path = tmp_path / "r.yaml"
    path.write_text("- rule: R\n  desc: d\n  condition: proc.name = bash\n  output: u=%toupper(user.name) %basename(proc.exepath)\n"
                    "  priority: info\n")
    assert [rule.name for rule in load_rules([path], registry_for=registry_for).rules] == ["R"]
