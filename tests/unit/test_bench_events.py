"""bench/syscall_events.py, the event mix the benchmarks share: fields spelled as the syscall
registry reads them, the stated mix, deterministic, and its attack steps fire Falco's rules (or ours)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))

from syscall_events import encode_events, generate_events, iter_events, unbound_keys  # noqa: E402


def test_every_key_binds_in_the_syscall_registry_and_values_have_falco_types():
    events = generate_events(5000, seed=1)
    assert unbound_keys(events) == set()
    from pipeline.fields import registry_for

    registry = registry_for("syscall")
    for key in ("fd.num", "proc.tty", "evt.is_open_read", "user.uid", "evt.time"):
        bound = registry.bind(key)
        assert all(bound.extract(e).__class__ is bound.native_class for e in events if key in e), key


def test_the_mix_is_mostly_file_io_with_exec_connect_chmod_from_containers_and_hosts():
    events = generate_events(20000, seed=42)
    types = Counter(e["evt.type"] for e in events)
    file_io = sum(types[t] for t in ("open", "openat", "read", "close", "mmap"))
    assert file_io / len(events) > 0.6
    assert types["openat"] == max(types.values())
    for evttype in ("execve", "connect", "chmod", "fchmodat"):
        assert 0 < types[evttype] / len(events) < 0.15, evttype
    in_container = sum(e["container.id"] != "host" for e in events) / len(events)
    assert 0.3 < in_container < 0.8
    assert all(("k8s.ns.name" in e) == (e["container.id"] != "host") for e in events)
    assert not any("evt.is_open_read" in e for e in events if e["evt.type"] == "read")


def test_the_same_seed_gives_the_same_bytes():
    assert encode_events(iter_events(3000, seed=5), chunk=1000) == encode_events(generate_events(3000, seed=5))
    assert [orjson.loads(p) for p in encode_events(generate_events(50, seed=5))] == generate_events(50, seed=5)
    assert generate_events(50, seed=5) != generate_events(50, seed=6)


def test_the_attack_steps_fire_rules_and_the_rest_nothing(upstream_rules_dir):
    from pipeline.engine import Engine
    from pipeline.fields import registry_for
    from pipeline.rules.loader import load_rules

    own = Path(__file__).resolve().parents[2] / "rules" / "peregrine_syscall_rules.yaml"  # chmod +x: our drift rule
    files = [upstream_rules_dir / "falco_rules.yaml", upstream_rules_dir / "falco-incubating_rules.yaml", own]
    rules = load_rules(files, registry_for=registry_for)
    engine = Engine.from_ruleset(rules, registry_for, rule_matching="all")
    fired: Counter = Counter()
    steps = 0
    for event in generate_events(10000, seed=42):
        names = [rule.name for rule in engine.evaluate(event, "syscall")]
        fired.update(names)
        if event["evt.num"] % 500 == 250:
            steps += 1
            assert names, event  # every attack step is caught
        else:
            assert not names, (names, event)  # the benign traffic is benign
    assert steps == 20
    assert {"Read sensitive file untrusted", "Terminal shell in container", "Clear Log Activities",
            "Drop and execute new binary in container", "Netcat Remote Code Execution in Container",
            "Container drift by exec bit", "Interactive shell in container"} <= set(fired)


def test_each_pid_is_one_process_with_one_parent_and_containers_keep_a_small_population():
    events = generate_events(30000, seed=3)
    benign = [e for e in events if e["evt.num"] % 500 != 250]
    identity: dict[int, tuple] = {}
    for event in benign:
        who = (event["proc.ppid"], event["proc.vpid"], event.get("proc.pname"), event["container.id"])
        assert identity.setdefault(event["proc.pid"], who) == who, event  # an exec changes the image, not the parent
    live: dict[str, set] = {}
    exited: set = set()
    peak: Counter = Counter()
    for event in benign:
        pid, cid = event["proc.pid"], event["container.id"]
        assert pid not in exited, event  # no event from a process after its exit; pids are not reused
        if event["evt.type"] == "clone":
            live.setdefault(cid, set()).add(event["evt.rawres"])  # the parent's side: rawres is the child
        if event["evt.type"] == "procexit":
            exited.add(pid)
            live[cid].discard(pid)
        else:
            live.setdefault(cid, set()).add(pid)
        peak[cid] = max(peak[cid], len(live[cid]))
    assert all(2 <= n <= 70 for n in peak.values()), peak
    types = Counter(e["evt.type"] for e in events)
    assert types["clone"] and types["procexit"] and types["execve"] > types["clone"] / 2
