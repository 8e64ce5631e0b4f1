"""Peregrine's own correlation rules (rules/peregrine_correlations.yaml) on the
recorded event streams under tests/data/correlation/, in file mode."""

from __future__ import annotations

import copy

from correlation_helpers import S, evaluator, events, peregrine_correlations, run

_, CORRELATIONS = peregrine_correlations()
LOG4SHELL = "Log4Shell exploitation chain"
DROP = "Drop and execute"
EXEC = "Repeated forbidden kubectl exec"
FANOUT = "Container fans out to many IPs"
SELF_ESCALATION = "RBAC self-escalation"


def test_the_rules_file_loads_without_spurious_warnings():
    from correlation_fields import registry_for

    from correlation_helpers import RULES
    from pipeline.correlation.parse import load_rules_and_correlations

    ruleset, correlations = load_rules_and_correlations(RULES, registry_for=registry_for)
    assert [c.name for c in correlations] == [LOG4SHELL, DROP, EXEC, FANOUT, SELF_ESCALATION]
    assert [c.kind for c in correlations] == ["sequence", "sequence", "threshold", "distinct", "sequence"]
    assert ruleset.warnings == ()


def test_log4shell_chain_fires_once_with_every_step_and_the_group():
    alerts = run(evaluator(CORRELATIONS, only=LOG4SHELL), events("log4shell.jsonl"))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.group == {"container.id": "4f2a9c1d7e3b"}
    assert [(e.step, e.id) for e in alert.events] == [("spawn", 1002), ("classfile", 1004), ("ldap", 1006)]
    assert "java ran curl -o /tmp/Exploit.class" in alert.output
    assert "wrote /tmp/Exploit.class" in alert.output
    assert "198.51.100.9:1389" in alert.output
    assert alert.events[1].summary == "evt.type=openat proc.name=java fd.name=/tmp/Exploit.class"
    assert alert.priority.label == "Critical"


def test_log4shell_steps_out_of_order_or_too_far_apart_do_not_fire():
    stream = events("log4shell.jsonl")
    ldap_first = [stream[6] | {"evt.time": stream[0]["evt.time"] + 5 * S}] + stream[:6]
    assert run(evaluator(CORRELATIONS, only=LOG4SHELL), ldap_first) == []
    late_ldap = stream[:6] + [stream[6] | {"evt.time": stream[2]["evt.time"] + 121 * S}]
    assert run(evaluator(CORRELATIONS, only=LOG4SHELL), late_ldap) == []
    other_container = stream[:6] + [stream[6] | {"container.id": "another"}]
    assert run(evaluator(CORRELATIONS, only=LOG4SHELL), other_container) == []


def test_drop_and_execute_binds_the_written_path_across_steps():
    alerts = run(evaluator(CORRELATIONS, only=DROP), events("drop_execute.jsonl"))
    assert len(alerts) == 1
    assert [e.step for e in alerts[0].events] == ["shell", "drop", "chmod", "exec"]
    assert [e.id for e in alerts[0].events] == [2000, 2002, 2005, 2007]
    assert "curl wrote /tmp/.x" in alerts[0].output and "ran it as .x --mine" in alerts[0].output


def test_drop_and_execute_needs_the_same_file_in_chmod_and_exec():
    stream = events("drop_execute.jsonl")
    other_exec = stream[:7] + [stream[7] | {"proc.exepath": "/tmp/other"}]
    assert run(evaluator(CORRELATIONS, only=DROP), other_exec) == []
    no_exec_bit = [e for e in stream if e["evt.num"] != 2005]
    assert run(evaluator(CORRELATIONS, only=DROP), no_exec_bit) == []


def test_drop_and_execute_until_unlink_discards_the_partial_match():
    stream = events("drop_execute.jsonl")
    unlink = {"evt.num": 2999, "evt.time": stream[5]["evt.time"] + 1, "evt.type": "unlink", "evt.dir": "<", "container.id": stream[0]["container.id"]}
    assert run(evaluator(CORRELATIONS, only=DROP), stream[:6] + [unlink] + stream[6:]) == []


def test_a_repeating_chain_gives_one_alert_per_completed_match():
    stream = events("drop_execute.jsonl")
    repeated = []
    for round_ in range(3):
        for event in stream:
            shifted = copy.deepcopy(event)
            shifted["evt.time"] += round_ * 60 * S
            shifted["evt.num"] += round_ * 100
            repeated.append(shifted)
    alerts = run(evaluator(CORRELATIONS, only=DROP), repeated)
    assert len(alerts) == 3
    assert [a.events[-1].id for a in alerts] == [2007, 2107, 2207]


def test_forbidden_exec_threshold_fires_at_the_twentieth_denial_of_one_user():
    alerts = run(evaluator(CORRELATIONS, only=EXEC), events("forbidden_exec.jsonl"), "k8s_audit")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.group == {"ka.user.name": "mallory"}
    assert len(alert.events) == 20 and alert.events[-1].id == "a-019"
    assert alert.output.startswith("20 forbidden exec attempts by mallory")


def test_forbidden_exec_threshold_is_a_sliding_window():
    stream = [e for e in events("forbidden_exec.jsonl") if e["ka.user.name"] == "mallory"][:20]
    spread = [e | {"evt.time": e["evt.time"] + i * 2 * S} for i, e in enumerate(stream)]  # 4s apart: 76s
    assert run(evaluator(CORRELATIONS, only=EXEC), spread, "k8s_audit") == []


def test_fanout_fires_at_fifty_distinct_ips_and_repeated_ips_do_not_count():
    stream = events("fanout.jsonl")
    alerts = run(evaluator(CORRELATIONS, only=FANOUT), stream)
    assert len(alerts) == 1
    assert "connected to 50 distinct IPs" in alerts[0].output
    assert len({e.id for e in alerts[0].events}) == 50
    same_ip = [e | {"fd.sip": "10.9.9.9"} for e in stream]
    assert run(evaluator(CORRELATIONS, only=FANOUT), same_ip) == []
