"""A minimal Faust worker around the correlation evaluator, for the kill -9 test.

Not Peregrine's worker (agents/): just enough Faust to show that the
evaluator's state in a changelog-backed table survives a worker killed
mid-sequence. Settings come from the environment: CORR_BOOTSTRAP,
CORR_IN_TOPIC, CORR_OUT_TOPIC, CORR_APP_ID, CORR_PROGRESS (a file that gets
one line per processed event). Run: ``python correlation_worker_app.py worker``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]

import faust  # noqa: E402
from correlation_fields import registry_for  # noqa: E402

from pipeline.correlation import CorrelationEvaluator  # noqa: E402
from pipeline.correlation.parse import load_rules_and_correlations  # noqa: E402

_, CORRELATIONS = load_rules_and_correlations(ROOT / "rules" / "peregrine_correlations.yaml", registry_for=registry_for)

app = faust.App(
    os.environ["CORR_APP_ID"],
    broker=f"kafka://{os.environ['CORR_BOOTSTRAP']}",
    store="memory://",  # the table comes back from its changelog topic on restart
    topic_partitions=1,
    broker_commit_interval=0.5,
    key_serializer="json",
    value_serializer="json",
    web_enabled=False,
)
events_topic = app.topic(os.environ["CORR_IN_TOPIC"], key_serializer="raw", value_serializer="json")
alerts_topic = app.topic(os.environ["CORR_OUT_TOPIC"], key_type=str, value_serializer="json")
state = app.Table("correlation-state", default=None, partitions=1, key_type=str)
progress = Path(os.environ["CORR_PROGRESS"])
evaluator: CorrelationEvaluator | None = None


@app.agent(events_topic)
async def correlate(stream):
    global evaluator
    async for event in stream:
        if evaluator is None:  # after the table has recovered
            evaluator = CorrelationEvaluator(CORRELATIONS, registry_for, store=state)
            evaluator.reindex()
        for alert in evaluator.process(event, "syscall"):
            await alerts_topic.send(key=alert.group_key, value=alert.to_dict())
        with progress.open("a") as handle:
            handle.write(f"{event.get('evt.num')} open={evaluator.open_groups}\n")


if __name__ == "__main__":
    app.main()
