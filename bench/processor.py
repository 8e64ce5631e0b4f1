"""Benchmark of the worker's batch processor alone, against the rule engine alone (prints figures, asserts nothing).

    .venv/bin/python bench/processor.py [--events 300000] [--batch 100] [--rounds 3] [--profile]
    .venv/bin/python bench/processor.py --against /tmp/perf-base [--pairs 3]

No Kafka, no OpenSearch. The events are bench/engine.py's realistic syscall mix
(NodeStream, bench/pipeline.py's seed), encoded once and cut into messages of up
to ``--batch`` events of one container (bench/pipeline.py's ``messages``); the
rules are bench/pipeline.py's (Falco's falco_rules.yaml, Peregrine's
rules/*_rules.yaml and its correlations; BENCH_RULES, a path list, replaces
them), bound to the real field registries, as a deployed worker runs them.

Figures, on the same bytes, timed in alternated rounds (best of ``--rounds``):

* processor alone: the worker's BatchProcessor (decode, schema check, process
  tree, rules, correlations, alerts), built as the worker builds it
  (pipeline/stream/delivery.py's build_processor), fed batches of
  PEREGRINE_BATCH_SIZE messages with the trees in a dict (bench/pipeline.py's
  ``processor_alone``); a fresh state store each round;
* engine alone: bench/engine.py's loop (orjson.loads + Scanner.scan_event) with
  the same rules, no correlations (bench/pipeline.py's ``engine_alone``);

their events/s, µs/event and ratio, and the peak RSS (most of it the generated
events: the generator's memory stays with the process). ``--breakdown`` adds
each part of the processor alone, in µs/event (bench/processor_parts.py:
decode, schema check, process tree, rules, correlations, and the rest: the
batch loop's own). ``--profile`` then runs the processor once more under
cProfile and prints its top 30 functions by cumulative and by own time.

``--against PATH`` measures another checkout's code (e.g. a worktree of the base
commit: ``git worktree add /tmp/perf-base <commit>``) against this one: each side
runs in its own subprocess (PYTHONPATH=PATH for the other, this checkout for
this one; the events, rules and this script are this checkout's on both sides),
alternated A, B, A, B... for ``--pairs`` pairs, since a shared machine's speed
drifts; prints every run, each side's best, and the ratios (with
``--breakdown``, every run's parts too). Each processor round uses a processor
built for it (outside the clock), as a worker meeting these events for the
first time: one processor again would find its correlation clocks at the
events' end and take half of them as late, which is cheaper.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
RESULT_PREFIX = "RESULT "


def load_code(code: Path) -> None:
    """Import the ``pipeline`` package from ``code`` before anything else does: bench/pipeline.py
    and bench/engine.py put this checkout first on sys.path, but an imported package stays the
    one first imported."""
    sys.path.insert(0, str(code))
    import pipeline

    where = Path(pipeline.__file__).resolve().parent
    if where != (code / "pipeline").resolve():
        raise SystemExit(f"pipeline was imported from {where}, not from {code}")


def bench_pipeline():
    """bench/pipeline.py as a module (its name would clash with the ``pipeline`` package);
    importing it starts nothing."""
    spec = importlib.util.spec_from_file_location("bench_pipeline", BENCH / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(args: argparse.Namespace) -> dict:
    bp = bench_pipeline()
    from pipeline.stream.batch import DictStateStore, Message, kafka_partition
    from pipeline.stream.delivery import build_processor
    from pipeline.stream.settings import PipelineSettings

    rules = os.environ.get("BENCH_RULES") or os.pathsep.join(bp.rule_files())
    os.environ["PEREGRINE_RULES"] = rules  # as bench/pipeline.py's main sets them for its worker
    os.environ.pop("PEREGRINE_REGISTRY", None)
    msgs = bp.messages(bp.encoded_events(args.events), args.batch)
    total = sum(v.count(b"\n") + 1 for _, v in msgs)

    settings = PipelineSettings.from_env(partitions=args.partitions)
    batch = [Message(settings.syscall_topic, kafka_partition(k, args.partitions), i, k, v) for i, (k, v) in enumerate(msgs)]

    engine = bp.engine_loop(msgs, rules.split(os.pathsep))

    def processor_run(profiler: cProfile.Profile | None = None) -> tuple[float, int]:
        """One pass over the events by a processor built for it (outside the clock), with an
        empty state store: the state of a worker that meets these events for the first time.
        The same processor again would find its correlation clocks at the events' end and
        take half of them as late (cheaper: no correlation is evaluated for a late event)."""
        processor = build_processor(settings)
        store = DictStateStore()
        gc.collect()
        if profiler is not None:
            profiler.enable()
        alerts = 0
        began = time.perf_counter()
        for start in range(0, len(batch), settings.batch_size):
            alerts += len(processor.process(batch[start:start + settings.batch_size], store).alerts)
        elapsed = time.perf_counter() - began
        if profiler is not None:
            profiler.disable()
        return elapsed, alerts

    engine()  # warm
    processor_run()
    proc_times, engine_times = [], []
    alerts = processor_alerts = 0
    for _ in range(args.rounds):
        elapsed, processor_alerts = processor_run()
        proc_times.append(elapsed)
        gc.collect()
        began = time.perf_counter()
        alerts = engine()
        engine_times.append(time.perf_counter() - began)
    proc, eng = min(proc_times), min(engine_times)
    result = {
        "events": total, "messages": len(msgs), "alerts": alerts, "processor_alerts": processor_alerts,
        "processor": total / proc, "engine": total / eng,
        "processor_us": proc / total * 1e6, "engine_us": eng / total * 1e6,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "code": str(Path(sys.modules["pipeline"].__file__).resolve().parents[1]),
    }
    if args.breakdown:
        import processor_parts

        result["parts"] = processor_parts.breakdown(msgs, batch, settings, rules.split(os.pathsep), args.rounds)
    if args.profile:
        profiler = cProfile.Profile()
        processor_run(profiler)
        result["profile"] = profile_text(profiler, total)
    return result


def profile_text(profiler: cProfile.Profile, events: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"cProfile of one processor run over {events:,} events (cProfile's own cost inflates every call; "
              "compare shares, not absolute times)\n")
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(30)
    return out.getvalue()


def describe(r: dict, label: str = "") -> str:
    head = f"[{label}] " if label else ""
    return (f"{head}processor alone: {r['processor']:>10,.0f} events/s ({r['processor_us']:.2f} us/event); "
            f"engine alone: {r['engine']:>10,.0f} events/s ({r['engine_us']:.2f} us/event); "
            f"ratio {r['processor'] / r['engine']:.3f}; processor - engine {r['processor_us'] - r['engine_us']:.2f} us/event; "
            f"peak RSS {r['rss_mib']:.0f} MiB; processor alerts {r['processor_alerts']}"
            + (f"\n{head}  parts: {processor_parts_text(r['parts'])}" if "parts" in r else ""))


def processor_parts_text(parts: dict) -> str:
    import processor_parts

    return processor_parts.describe(parts)


def child(code: Path, args: argparse.Namespace) -> dict:
    """One measurement of ``code`` in a subprocess; its figures come back as a RESULT line."""
    import json

    cmd = [sys.executable, str(Path(__file__).resolve()), "--code", str(code), "--events", str(args.events),
           "--batch", str(args.batch), "--rounds", str(args.rounds), "--partitions", str(args.partitions), "--emit"] + (["--breakdown"] if args.breakdown else [])
    env = dict(os.environ)
    if code.resolve() != ROOT:
        env["PYTHONPATH"] = str(code)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise SystemExit(f"no result from {cmd}")


def against(other: Path, args: argparse.Namespace) -> None:
    runs: dict[str, list[dict]] = {"this": [], "other": []}
    print(f"A = {other} (PYTHONPATH), B = {ROOT}; {args.events:,} events, {args.rounds} rounds a run, alternated A, B x {args.pairs}")
    for pair in range(args.pairs):
        for side, code in (("other", other), ("this", ROOT)):
            r = child(code, args)
            runs[side].append(r)
            print(describe(r, f"{'A' if side == 'other' else 'B'} {pair + 1}"), flush=True)
    best = {side: max(rs, key=lambda r: r["processor"]) for side, rs in runs.items()}
    engine = {side: max(r["engine"] for r in rs) for side, rs in runs.items()}
    a, b = best["other"], best["this"]
    print(f"best A: processor {a['processor']:,.0f} events/s ({a['processor_us']:.2f} us/event), engine {engine['other']:,.0f} events/s")
    print(f"best B: processor {b['processor']:,.0f} events/s ({b['processor_us']:.2f} us/event), engine {engine['this']:,.0f} events/s")
    print(f"B/A processor: {b['processor'] / a['processor']:.3f}x; median B/A over the pairs: "
          f"{sorted(rb['processor'] / ra['processor'] for ra, rb in zip(runs['other'], runs['this']))[args.pairs // 2]:.3f}x; "
          f"engine B/A {engine['this'] / engine['other']:.3f}x (the same code on both sides: the machine's drift)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=100, help="events per message (bench/pipeline.py's --batch)")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each side in a run, alternated; the best counts")
    parser.add_argument("--breakdown", action="store_true", help="each part of the processor alone, in us/event (bench/processor_parts.py)")
    parser.add_argument("--profile", action="store_true", help="then a cProfile of one processor run (top 30, cumulative and own time)")
    parser.add_argument("--against", type=Path, help="another checkout to measure against this one, alternated in subprocesses")
    parser.add_argument("--pairs", type=int, default=3, help="with --against: how many A, B pairs")
    parser.add_argument("--code", type=Path, default=ROOT, help=argparse.SUPPRESS)  # the checkout whose pipeline is measured
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)  # a child's figures, as one RESULT line
    args = parser.parse_args(argv)
    if args.against is not None:
        against(args.against, args)
        return 0
    load_code(args.code)
    r = measure(args)
    if args.emit:
        import json

        print(RESULT_PREFIX + json.dumps({k: v for k, v in r.items() if k != "profile"}))
        return 0
    print(f"{r['events']:,} events of bench/engine.py's mix in {r['messages']:,} messages of up to {args.batch}; "
          f"code: {r['code']}; alerts: processor {r['processor_alerts']}, engine {r['alerts']}")
    print(describe(r))
    if "profile" in r:
        print(r["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
