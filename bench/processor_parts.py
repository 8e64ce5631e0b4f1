"""Where the batch processor's time goes: each of its parts alone, on the same events.

Used by bench/processor.py (``--breakdown``). Each part is timed over every event,
best of ``rounds``, in µs/event:

* decode: pipeline.ingest.decode.decode_message of every message (orjson.loads included);
* schema: pipeline.fields.schema.validate_event of every decoded event;
* tree: ProcessTree.enrich_in_place + update, one tree per container key, on copies
  of the events made outside the clock;
* rules: Scanner.scan_event without correlations (the engine and the alerts);
* correlations: the worker's CorrelationEvaluator.process (a fresh one a round);
* processor: the whole BatchProcessor (a fresh one a round), whose time beyond the
  sum of the parts is the batch loop's own (bookkeeping, trees looked up and
  written, dead-letter accounting).
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable


def _best(run: Callable[[], Any], rounds: int, prepare: Callable[[], Any] | None = None) -> float:
    best = float("inf")
    for _ in range(rounds):
        arg = prepare() if prepare is not None else None
        gc.collect()
        began = time.perf_counter()
        run() if prepare is None else run(arg)
        best = min(best, time.perf_counter() - began)
    return best


def breakdown(msgs: list[tuple[bytes, bytes]], batch: list, settings: Any, rules: list[str], rounds: int) -> dict[str, float]:
    """µs/event of each part (see the module docstring), and ``rest``: the processor's time beyond them."""
    from pipeline.fields.schema import validate_event
    from pipeline.ingest.decode import decode_message
    from pipeline.ingest.keys import container_key
    from pipeline.rules.loader import RulesLoader
    from pipeline.scan import Scanner
    from pipeline.state.process_tree import ProcessTree
    from pipeline.stream.batch import DictStateStore
    from pipeline.stream.delivery import build_processor

    limit = settings.max_message_bytes
    events = [event for _, value in msgs for event in decode_message(value, limit)]
    keys = [container_key(event) for event in events]
    total = len(events)

    def decode() -> None:
        for _, value in msgs:
            decode_message(value, limit)

    def schema() -> None:
        for event in events:
            validate_event(event, "syscall")

    def tree(copies: list[dict]) -> None:
        trees: dict[str, ProcessTree] = {}
        for key, event in zip(keys, copies):
            found = trees.get(key)
            if found is None:
                found = trees[key] = ProcessTree()
            found.enrich_in_place(event)
            found.update(event)

    loader = RulesLoader()
    for path in rules:
        loader.add_file(path)
    scan = Scanner(loader.load(), source="syscall").scan_event

    def rules_alone() -> None:
        for event in events:
            scan(event, "syscall")

    def correlations(correlator: Any) -> None:
        process = correlator.process
        for event in events:
            process(event, "syscall")

    def processor(built: Any) -> None:
        store = DictStateStore()
        for start in range(0, len(batch), settings.batch_size):
            built.process(batch[start:start + settings.batch_size], store)

    parts = {
        "decode": _best(decode, rounds),
        "schema": _best(schema, rounds),
        "tree": _best(tree, rounds, lambda: [dict(event) for event in events]),
        "rules": _best(rules_alone, rounds),
        "correlations": _best(correlations, rounds, lambda: build_processor(settings).scanner.correlator),
        "processor": _best(processor, rounds, lambda: build_processor(settings)),
    }
    out = {name: seconds / total * 1e6 for name, seconds in parts.items()}
    out["rest"] = out["processor"] - sum(value for name, value in out.items() if name != "processor")
    return out


def describe(parts: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.2f}" for name, value in parts.items()) + " (us/event)"
