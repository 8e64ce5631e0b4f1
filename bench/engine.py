"""Benchmark: Falco's rules on one core, from JSON bytes to alerts, against decoding alone.

    .venv/bin/python bench/engine.py [--events 200000] [--profile]

Loads falco_rules.yaml + falco-incubating_rules.yaml from ../shared/upstream/falco-rules,
builds the engine, generates a realistic syscall mix (mostly open/openat/read, some
execve, connect, chmod; container and host events; a few that fire rules), encodes it
as JSON, then times, on the same bytes:

* baseline: ``orjson.loads`` of every event;
* pipeline: ``orjson.loads`` + ``engine.evaluate`` + an alert for every match.

Prints both rates, their ratio (pipeline / baseline; the goal is >= 0.5), the
matches, and the peak RSS; ``--profile`` adds where the pipeline's time goes;
``--correlations`` then runs Peregrine's correlation rules (bench/correlation.py).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.engine import Engine  # noqa: E402
from pipeline.rules.loader import load_rules  # noqa: E402

RULES_DIR = ROOT.parent / "shared" / "upstream" / "falco-rules"
RULE_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml")

# (event type, weight): what a busy node's syscall stream looks like after the collector's filter
MIX = [
    ("openat", 34), ("open", 6), ("read", 20), ("close", 10), ("execve", 8), ("connect", 6),
    ("accept", 3), ("chmod", 2), ("fchmodat", 1), ("mmap", 3), ("unlinkat", 2), ("setuid", 1), ("sendto", 4),
]
PROCESSES = [
    ("nginx", "/usr/sbin/nginx", "nginx: worker process", "nginx"),
    ("python3", "/usr/bin/python3", "python3 app.py", "gunicorn"),
    ("java", "/usr/bin/java", "java -jar service.jar", "java"),
    ("cat", "/usr/bin/cat", "cat /etc/hosts", "bash"),
    ("bash", "/usr/bin/bash", "bash -c ls", "sshd"),
    ("node", "/usr/local/bin/node", "node server.js", "npm"),
    ("postgres", "/usr/lib/postgresql/bin/postgres", "postgres: writer", "postgres"),
]
FILES = [
    "/etc/hosts", "/etc/resolv.conf", "/etc/ssl/certs/ca.pem", "/var/log/app.log", "/proc/self/status",
    "/usr/lib/x86_64-linux-gnu/libc.so.6", "/tmp/cache.bin", "/app/data/db.sqlite", "/dev/null", "/etc/passwd",
]
# A few events that Falco's rules flag, so the alert path runs too.
SUSPICIOUS = [
    {"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "evt.is_open_read": True},
    {"evt.type": "execve", "proc.name": "bash", "proc.pname": "nginx", "proc.tty": 34816},
    {"evt.type": "openat", "proc.name": "python3", "fd.name": "/etc/ld.so.preload", "evt.is_open_write": True},
]


def realistic_event(rng: random.Random, seq: int) -> dict[str, Any]:
    """One syscall event as Falco names its fields."""
    evttype = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
    name, exe, cmdline, parent = rng.choice(PROCESSES)
    in_container = rng.random() < 0.7
    path = rng.choice(FILES)
    event: dict[str, Any] = {
        "evt.type": evttype,
        "evt.dir": "<",
        "evt.num": seq,
        "evt.time": 1_700_000_000_000_000_000 + seq * 1000,
        "evt.res": "SUCCESS",
        "evt.rawres": 3,
        "proc.name": name,
        "proc.exe": exe,
        "proc.exepath": exe,
        "proc.cmdline": cmdline,
        "proc.args": cmdline.partition(" ")[2],
        "proc.pname": parent,
        "proc.pcmdline": parent,
        "proc.pid": 1000 + seq % 5000,
        "proc.ppid": 900,
        "proc.tty": 0,
        "proc.sid": 1,
        "proc.vpgid": 1,
        "user.name": "root" if rng.random() < 0.3 else "app",
        "user.uid": 0 if rng.random() < 0.3 else 1000,
        "user.loginuid": -1,
        "group.gid": 0,
        "container.id": "3f2a9c1b7e4d" if in_container else "host",
        "container.name": "web" if in_container else "host",
        "container.image.repository": "registry.local/web" if in_container else "",
        "container.privileged": False,
        "k8s.ns.name": "shop" if in_container else "",
        "k8s.pod.name": "web-7c9d" if in_container else "",
    }
    if evttype in ("open", "openat", "read", "close", "mmap", "chmod", "fchmodat", "unlinkat"):
        write = rng.random() < 0.15
        event.update(
            {
                "fd.name": path,
                "fd.directory": path.rsplit("/", 1)[0] or "/",
                "fd.filename": path.rsplit("/", 1)[1],
                "fd.typechar": "f",
                "fd.type": "file",
                "fd.num": 3 + seq % 60,
                "evt.is_open_read": not write,
                "evt.is_open_write": write,
                "evt.is_open_exec": False,
                "evt.arg.flags": "O_RDWR|O_CREAT" if write else "O_RDONLY",
            }
        )
    if evttype in ("connect", "accept", "sendto"):
        event.update(
            {
                "fd.typechar": "4",
                "fd.type": "ipv4",
                "fd.num": 7,
                "fd.l4proto": "tcp",
                "fd.sip": "10.0.3.17",
                "fd.sport": 5432,
                "fd.cip": "10.0.1.5",
                "fd.cport": 40000 + seq % 1000,
                "fd.name": "10.0.1.5:40000->10.0.3.17:5432",
            }
        )
    if evttype == "execve":
        event.update({"proc.is_exe_upper_layer": False, "proc.aname[2]": "containerd-shim", "proc.aname[3]": "systemd"})
    if seq % 500 == 0:
        event.update(rng.choice(SUSPICIOUS))
    return event


def alert_formatter() -> Callable[[Any, dict[str, Any]], Any]:
    """The project's alert builder when present; else a minimal one with the same cost shape."""
    try:
        from pipeline.alerts import build_alert  # type: ignore[attr-defined]

        return build_alert
    except ImportError:
        pass

    def minimal(rule: Any, event: dict[str, Any]) -> dict[str, Any]:
        return {"rule": rule.name, "priority": getattr(rule.priority, "name", str(rule.priority)), "time": event.get("evt.time"), "output": rule.output}

    return minimal


def run(count: int, profile: bool) -> None:
    rules = load_rules([RULES_DIR / name for name in RULE_FILES])
    started = time.perf_counter()
    engine = Engine.from_ruleset(rules, rule_matching="first")
    built = time.perf_counter() - started
    rng = random.Random(42)
    # written to one buffer then split: orjson's output buffers are oversized, keeping them inflates RSS
    buffer = io.BytesIO()
    for seq in range(count):
        buffer.write(orjson.dumps(realistic_event(rng, seq)))
        buffer.write(b"\n")
    payloads = buffer.getvalue().split(b"\n")[:-1]
    del buffer
    size = sum(len(p) for p in payloads) / len(payloads)
    evaluate = engine.evaluator("syscall")
    loads = orjson.loads
    alert = alert_formatter()

    def baseline() -> int:
        n = 0
        for payload in payloads:
            loads(payload)
            n += 1
        return n

    def pipeline() -> int:
        alerts = 0
        for payload in payloads:
            event = loads(payload)
            for rule in evaluate(event):
                alert(rule, event)
                alerts += 1
        return alerts

    gc.collect()
    base_time = min(_timed(baseline) for _ in range(3))
    pipe_time, alerts = min((_timed_value(pipeline) for _ in range(3)), key=lambda pair: pair[0])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base_rate, pipe_rate = count / base_time, count / pipe_time
    print(f"rules: {len(engine.rules('syscall'))} syscall rules, {engine.bucket_count('syscall')} evttype buckets, built in {built * 1000:.0f} ms")
    print(f"events: {count} ({size:.0f} bytes of JSON each), alerts: {alerts}")
    print(f"baseline orjson.loads : {base_rate:12,.0f} events/s  ({base_time / count * 1e6:.2f} us/event)")
    print(f"decode+rules+alerts   : {pipe_rate:12,.0f} events/s  ({pipe_time / count * 1e6:.2f} us/event)")
    print(f"ratio pipeline/baseline: {pipe_rate / base_rate:.2f} (goal >= 0.5); rules alone {(pipe_time - base_time) / count * 1e6:.2f} us/event")
    print(f"peak RSS: {rss_mb:.0f} MiB")
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(pipeline)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue())


def _timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _timed_value(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true", help="show where the pipeline's time goes")
    parser.add_argument("--correlations", action="store_true", help="then the correlation case: bench/correlation.py at 10K and 100K groups")
    args = parser.parse_args(argv)
    run(args.events, args.profile)
    if args.correlations:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import correlation  # bench/correlation.py: cost per event, memory per open sequence

        correlation.main(["--events", str(args.events)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
