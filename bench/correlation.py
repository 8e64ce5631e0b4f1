"""Benchmark: Peregrine's correlation rules, cost per event and memory per open sequence.

    .venv/bin/python bench/correlation.py [--groups 10000 100000] [--events 200000]

Loads rules/peregrine_correlations.yaml (two sequences, a threshold and a
distinct count), then for each group count N:

1. opens N partial sequences: per container, a shell and a downloader
   writing a file (the first two steps of "Drop and execute"; the second
   binds the path), and measures the Python memory the state takes
   (tracemalloc: store + index) divided by N, plus its JSON size per group;
2. times ``CorrelationEvaluator.process`` on a syscall mix spread over the
   N containers (opens, reads, execs, connects, chmods; some advance the
   open sequences, a few complete them), with N groups open, and prints
   microseconds per event and alerts.

Events are flat dicts keyed by Falco field names. The project's field
registries are used when present; otherwise a flat registry of the fields
the rules read.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.correlation import CorrelationEvaluator, CorrelationLimits  # noqa: E402
from pipeline.correlation.parse import load_rules_and_correlations  # noqa: E402
from pipeline.fields.registry import MISSING, ArgKind, BoundField, FieldDef, FieldRegistry, FieldType  # noqa: E402

RULES = ROOT / "rules" / "peregrine_correlations.yaml"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def _flat_registry_for():
    try:
        from pipeline.fields import registry_for  # type: ignore[attr-defined]

        registry_for("syscall")
        return registry_for, "project"
    except (ImportError, LookupError, Exception):  # noqa: BLE001
        pass
    string, integer = FieldType.STRING, FieldType.INT
    syscall = [FieldDef(n, t) for n, t in [
        ("evt.time", FieldType.ABSTIME), ("evt.num", integer), ("evt.type", string), ("evt.dir", string),
        ("evt.is_open_write", FieldType.BOOL), ("proc.name", string), ("proc.pname", string), ("proc.cmdline", string),
        ("proc.exepath", string), ("proc.pid", integer), ("fd.name", string), ("fd.sip", FieldType.IPADDR),
        ("fd.sport", integer), ("fd.l4proto", string), ("container.id", string),
    ]] + [FieldDef("evt.arg", string, arg=ArgKind.KEY_OR_INDEX)]
    k8s = [FieldDef(n, string) for n in (
        "ka.auditid", "ka.user.name", "ka.target.resource", "ka.target.subresource", "ka.target.name",
        "ka.target.namespace", "ka.response.code", "ka.auth.decision", "ka.verb")] + [FieldDef("evt.time", FieldType.ABSTIME)]

    def bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
        flat = definition.name if arg is None else f"{definition.name}.{arg}"
        return BoundField(definition, arg, key, lambda e, k=flat: e.get(k, MISSING), flat_key=flat if arg is None else None)

    registries = {"syscall": FieldRegistry("syscall", syscall, bind), "k8s_audit": FieldRegistry("k8s_audit", k8s, bind)}
    return registries.__getitem__, "flat (bench)"


def opening_events(groups: int, t: int) -> list[dict[str, Any]]:
    out = []
    for g in range(groups):
        cid = f"c{g:06x}"
        out.append({"evt.time": t, "evt.num": 2 * g, "evt.type": "execve", "evt.dir": "<", "proc.name": "bash",
                    "proc.cmdline": "bash -c x", "proc.exepath": "/bin/bash", "container.id": cid})
        out.append({"evt.time": t + 1, "evt.num": 2 * g + 1, "evt.type": "openat", "evt.dir": "<", "evt.is_open_write": True,
                    "proc.name": "curl", "fd.name": f"/tmp/drop-{g}", "container.id": cid})
    return out


def mixed_events(rng: random.Random, count: int, groups: int, t: int) -> list[dict[str, Any]]:
    kinds = ["openat"] * 40 + ["read"] * 20 + ["execve"] * 10 + ["connect"] * 10 + ["close"] * 15 + ["chmod"] * 5
    out = []
    for i in range(count):
        g = rng.randrange(groups)
        cid = f"c{g:06x}"
        kind = rng.choice(kinds)
        t += 20_000  # 50K events per second of event time
        event: dict[str, Any] = {"evt.time": t, "evt.num": 10_000_000 + i, "evt.type": kind, "evt.dir": "<", "container.id": cid,
                                 "proc.name": rng.choice(["nginx", "java", "python3", "bash", "curl"])}
        if kind == "openat":
            event["evt.is_open_write"] = rng.random() < 0.1
            event["fd.name"] = rng.choice(["/etc/hosts", "/tmp/cache", "/var/log/app.log", "/app/A.class"])
        elif kind == "connect":
            event.update({"fd.l4proto": "tcp", "fd.sip": f"10.0.{rng.randrange(4)}.{rng.randrange(250)}", "fd.sport": rng.choice([443, 5432, 389])})
        elif kind == "chmod":
            event.update({"evt.arg.filename": f"/tmp/drop-{g}", "evt.arg.mode": "0755(S_IXUSR|S_IRUSR)"})
        elif kind == "execve":
            event.update({"proc.exepath": f"/tmp/drop-{g}" if rng.random() < 0.2 else "/usr/bin/ls", "proc.cmdline": "x"})
        out.append(event)
    return out


def run(groups: int, count: int, registry_for, label: str) -> None:
    ruleset, correlations = load_rules_and_correlations(RULES, registry_for=registry_for)
    limits = CorrelationLimits(max_groups=max(200_000, 4 * groups))
    opening = opening_events(groups, T0)
    gc.collect()
    tracemalloc.start()
    evaluator = CorrelationEvaluator(correlations, registry_for, limits=limits)
    before = tracemalloc.get_traced_memory()[0]
    for event in opening:
        evaluator.process(event, "syscall")
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    open_sequences = sum(len(state.get("p", ())) for state in evaluator.store.values())
    json_bytes = sum(len(json.dumps(state)) for state in evaluator.store.values()) / max(len(evaluator.store), 1)
    del opening
    stream = mixed_events(random.Random(7), count, groups, T0 + 2)
    gc.collect()
    started = time.perf_counter()
    alerts = 0
    process = evaluator.process
    for event in stream:
        alerts += len(process(event, "syscall"))
    elapsed = time.perf_counter() - started
    print(f"groups {groups:>7,}: {open_sequences:,} open sequences, {held / max(open_sequences, 1):,.0f} B each in memory "
          f"(state + index), {json_bytes:,.0f} B JSON per group; "
          f"{elapsed / count * 1e6:.2f} us/event over {count:,} events with 4 correlations "
          f"({count / elapsed:,.0f} events/s), {alerts} alerts, {evaluator.open_groups:,} groups open after "
          f"[registry: {label}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    registry_for, label = _flat_registry_for()
    for groups in args.groups:
        run(groups, args.events, registry_for, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
