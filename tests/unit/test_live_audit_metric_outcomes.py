"""peregrine_live_audit_events_total shows every outcome docs/audit.md lists from a worker's start.

A worker's /metrics shows each pre-labelled series at 0; an outcome left out appears only when first
counted, so a rate or an alert on it has no series until then. "unchanged" was left out.
"""

from __future__ import annotations

import subprocess
import sys

from pipeline.audit import live


def test_every_live_audit_outcome_is_exposed_before_it_is_counted():
    outcomes = {live.AUDITED, live.UNCHANGED, live.NO_OBJECT, live.REJECTED, live.DRY_RUN, live.OWNED, live.ERROR}
    # a fresh process: in this one, other tests may have counted (and so created) any outcome
    page = subprocess.run(
        [sys.executable, "-c", "import sys; from pipeline import metrics; sys.stdout.write(metrics.exposition().decode())"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    shown = {o for o in outcomes if f'peregrine_live_audit_events_total{{outcome="{o}"}} 0.0' in page}
    assert shown == outcomes
