"""A correlation's output prints as a rule's: the same tokenizer, transformers, time texts and
value texts, for its own fields, its steps' fields and next to %corr.*; and every name in it is
still checked at load, at its line and column."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline.correlation import CorrelationEvaluator
from pipeline.correlation.parse import CorrelationLoader
from pipeline.errors import ConfigError, RuleLoadError
from pipeline.rules.loader import RulesLoader
from pipeline.scan import Scanner

S = 1_000_000_000
T0 = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20.123456789 UTC

FORMAT = (
    "%toupper(user.name) %tolower(proc.name) %basename(proc.exepath) %basename(toupper(proc.exepath)) %b64(evt.arg.data) "
    "%evt.time %evt.time.iso8601 %evt.datetime %evt.rawtime.s %proc.aname[2] %proc.aname %fd.types "
    "%proc.is_exe_writable %fd.name [%proc.cmdline] 100%%"
)
SAME_FORMAT = f"""\
- rule: Exec
  desc: every exec
  condition: evt.type = execve
  output: "{FORMAT}"
  priority: NOTICE
- correlation: One exec
  type: threshold
  condition: evt.type = execve
  window: 1m
  count: 1
  output: "{FORMAT}"
  priority: NOTICE
"""

SEQUENCE = """\
- correlation: Download then run
  type: sequence
  by: container.id
  maxspan: 1m
  steps:
    - name: fetch
      condition: evt.type = openat and proc.name = curl
    - name: run
      condition: evt.type = execve
  output: >
    %user.name %toupper(step.fetch.user.name) (%step.fetch.user.name) fetched %basename(step.fetch.fd.name)
    at %step.fetch.evt.time (%step.fetch.evt.time.iso8601, %step.fetch.evt.datetime), its ancestor %step.fetch.proc.aname[2],
    %tolower(step.run.proc.name) ran at %evt.time; %step.fetch.proc.pname; %toupper(corr.rule): %corr.count events in %corr.group
  priority: CRITICAL
"""


def load(text: str, path: str = "c.yaml"):
    rules, correlations = RulesLoader(), CorrelationLoader()
    rules.add_text(text, path)
    correlations.add_text(text, path)
    ruleset = rules.load()
    return ruleset, correlations.load(ruleset)


def scanner(text: str) -> Scanner:
    ruleset, correlations = load(text)
    return Scanner(ruleset, correlations=correlations, source="syscall", hostname="node-1")


def execve(time: int, **fields) -> dict:
    event = {"evt.time": time, "evt.num": time % 1000, "evt.type": "execve", "evt.dir": "<", "container.id": "c1"}
    event.update(fields)
    return event


def test_a_correlation_output_prints_every_field_and_transformer_as_the_same_rule_output():
    event = execve(
        T0, **{"user.name": "Alice", "proc.name": "Curl", "proc.exepath": "/usr/bin/curl", "evt.arg.data": "aGVsbG8=",
               "proc.pname": "bash", "proc.aname[2]": "sshd", "fd.types": ["file", "ipv4"], "proc.is_exe_writable": True,
               "proc.cmdline": "curl  -o  /tmp/x\thttp://x"},
    )
    rule, correlation = sorted(scanner(SAME_FORMAT).scan_event(event), key=lambda alert: "corr.type" in alert.output_fields)

    assert correlation.rule == "One exec" and correlation.message == rule.message
    assert rule.message == (
        "ALICE curl curl CURL hello 22:13:20.123456789 2023-11-14T22:13:20.123456789Z 2023-11-14 22:13:20.123456789 "
        "1700000000 sshd Curl (file,ipv4) true <NA> [curl  -o  /tmp/x\thttp://x] 100%"
    )
    assert correlation.output == rule.output == f"22:13:20.123456789: Notice {rule.message}"
    # every value the output prints is in output_fields, under the same key and in the same JSON form
    assert {key: correlation.output_fields[key] for key in rule.output_fields} == rule.output_fields
    assert correlation.output_fields["toupper(user.name)"] == "ALICE" and correlation.output_fields["fd.name"] is None


def test_step_fields_take_transformers_and_print_their_own_events_time():
    fetch = execve(T0, **{"evt.type": "openat", "proc.name": "curl", "user.name": "bob", "fd.name": "/tmp/dl/payload.sh",
                          "proc.aname[2]": "sshd"})
    run = execve(T0 + 2 * S, **{"proc.name": "SH", "user.name": "root"})
    scan = scanner(SEQUENCE)

    assert scan.scan_event(fetch) == []
    (alert,) = scan.scan_event(run)

    assert alert.message == (
        "root BOB (bob) fetched payload.sh "
        "at 22:13:20.123456789 (2023-11-14T22:13:20.123456789Z, 2023-11-14 22:13:20.123456789), its ancestor sshd, "
        "sh ran at 22:13:22.123456789; <NA>; DOWNLOAD THEN RUN: 2 events in container.id=c1"
    )
    fields = alert.output_fields
    assert fields["toupper(step.fetch.user.name)"] == "BOB" and fields["step.fetch.evt.time"] == T0
    assert fields["evt.time"] == T0 + 2 * S and fields["corr.count"] == 2 and fields["step.fetch.proc.pname"] is None


def test_a_step_records_its_fields_untransformed_and_the_output_reads_them_after_a_restart():
    fetch = execve(T0, **{"evt.type": "openat", "proc.name": "curl", "user.name": "bob", "fd.name": "/tmp/dl/payload.sh",
                          "proc.aname[2]": "sshd"})
    first = scanner(SEQUENCE)
    first.scan_event(fetch)
    (state,) = first.correlator.store.values()
    (partial,) = state["p"]
    assert partial["e"][0]["f"] == {"fd.name": "/tmp/dl/payload.sh", "proc.aname[2]": "sshd", "proc.pname": None, "user.name": "bob"}

    restarted = scanner(SEQUENCE)
    restarted.correlator.store = json.loads(json.dumps(dict(first.correlator.store)))  # as the changelog gives it back
    restarted.correlator.reindex()
    (alert,) = restarted.scan_event(execve(T0 + S, **{"proc.name": "sh", "user.name": "root"}))
    assert alert.message.startswith("root BOB (bob) fetched payload.sh at 22:13:20.123456789 ")


@pytest.mark.parametrize(
    ("output", "where", "message"),
    [
        ("%toupper(step.fetc.user.name)", "c.yaml:10:21", "'%step.fetc.user.name' names no step of correlation 'Download then run'"),
        ("x %basename(step.fetch.proc.nope)", "c.yaml:10:24", "unknown field 'proc.nope' for source 'syscall' (in the output)"),
        ("%tolower(proc.nope)", "c.yaml:10:21", "unknown field 'proc.nope' for source 'syscall' (in the output)"),
        ("%toupper(corr.nope)", "c.yaml:10:21", "unknown output field '%corr.nope'; expected one of %corr.count"),
        ("%corr.count[2]", "c.yaml:10:13", "'%corr.count' takes no argument"),
        ("%step.fetch", "c.yaml:10:13", "needs a field after the step name"),
    ],
)
def test_an_unknown_name_in_the_output_is_a_located_load_error(output: str, where: str, message: str):
    text = SEQUENCE.split("  output: >")[0] + f'  output: "{output}"\n  priority: CRITICAL\n'
    with pytest.raises(RuleLoadError) as caught:
        load(text)
    assert str(caught.value.location) == where
    assert message in caught.value.message


def test_a_correlation_built_without_its_compiled_output_is_refused_when_the_evaluator_starts():
    _, (correlation,) = load(SEQUENCE)
    with pytest.raises(ConfigError, match="'Download then run' has no compiled output; load it with CorrelationLoader"):
        CorrelationEvaluator([dataclasses.replace(correlation, output_format=None)])
