"""Benchmark: Falco's rules on one core, from JSON bytes to alerts, against decoding alone.

    .venv/bin/python bench/engine.py [--events 200000] [--profile]

Loads falco_rules.yaml + falco-incubating_rules.yaml from ../shared/upstream/falco-rules
with the real field registries, builds the engine, generates the realistic syscall mix
of bench/syscall_events.py (mostly open/openat/read, some execve, connect, chmod;
container and host events; fields spelled as the syscall registry reads them, which
is checked; 1 in 500 an attack step Falco's rules flag), encodes it as JSON, then
times, on the same bytes, in alternated rounds (best of 5 each):

* baseline: ``orjson.loads`` of every event;
* pipeline: ``orjson.loads`` + ``engine.evaluate`` + for every match the project's
  Alert (output formatted, uuid) encoded as Falco's JSON.

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
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.engine import Engine  # noqa: E402
from pipeline.fields import registry_for  # noqa: E402
from pipeline.rules.loader import load_rules  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
from syscall_events import NodeStream, encode_events, generate_events, iter_events, unbound_keys  # noqa: E402,F401  (NodeStream: bench/pipeline.py)

RULES_DIR = ROOT.parent / "shared" / "upstream" / "falco-rules"
RULE_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml")


def alert_builder() -> Callable[[Any, dict[str, Any]], bytes]:
    """What the worker does with a match: the project's Alert (output formatted, uuid), as Falco's JSON."""
    from pipeline.alerts import AlertBuilder, falco_json

    build = AlertBuilder(registry_for, hostname="bench").build

    def alert(rule: Any, event: dict[str, Any]) -> bytes:
        return falco_json(build(rule, event, "syscall"))

    return alert


def run(count: int, profile: bool, rounds: int = 5) -> None:
    rules = load_rules([RULES_DIR / name for name in RULE_FILES], registry_for=registry_for)
    started = time.perf_counter()
    engine = Engine.from_ruleset(rules, registry_for, rule_matching="first")
    built = time.perf_counter() - started
    rss_engine_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unbound = unbound_keys(generate_events(min(count, 20_000), seed=42))
    if unbound:  # the generator must spell fields as the registry reads them
        raise SystemExit(f"event keys the syscall registry does not read: {sorted(unbound)}")
    payloads = encode_events(iter_events(count, seed=42))
    size = sum(len(p) for p in payloads) / len(payloads)
    evaluate = engine.evaluator("syscall")
    loads = orjson.loads
    alert = alert_builder()

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
    # alternated, best of each: a busy shared machine slows both sides alike
    base_times, pipe_times = [], []
    for _ in range(rounds):
        base_times.append(_timed(baseline))
        elapsed, alerts = _timed_value(pipeline)
        pipe_times.append(elapsed)
    base_time, pipe_time = min(base_times), min(pipe_times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base_rate, pipe_rate = count / base_time, count / pipe_time
    print(f"rules: {len(engine.rules('syscall'))} syscall rules, {engine.bucket_count('syscall')} evttype buckets, built in {built * 1000:.0f} ms")
    print(f"events: {count} ({size:.0f} bytes of JSON each), alerts: {alerts}")
    print(f"baseline orjson.loads : {base_rate:12,.0f} events/s  ({base_time / count * 1e6:.2f} us/event)")
    print(f"decode+rules+alerts   : {pipe_rate:12,.0f} events/s  ({pipe_time / count * 1e6:.2f} us/event)")
    print(f"ratio pipeline/baseline: {pipe_rate / base_rate:.2f} (goal >= 0.5); rules alone {(pipe_time - base_time) / count * 1e6:.2f} us/event")
    print(f"peak RSS: {rss_mb:.0f} MiB ({rss_engine_mb:.0f} MiB once rules were loaded and compiled; the rest is the {count} payloads held in memory)")
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
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each side, alternated; the best counts")
    parser.add_argument("--profile", action="store_true", help="show where the pipeline's time goes")
    parser.add_argument("--correlations", action="store_true", help="then the correlation case: bench/correlation.py at 10K and 100K groups")
    args = parser.parse_args(argv)
    run(args.events, args.profile, args.rounds)
    if args.correlations:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import correlation  # bench/correlation.py: cost per event, memory per open sequence

        correlation.main(["--events", str(args.events)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
