"""Correlation windows across events: sequences, thresholds and distinct counts.

``model`` says what a correlation is, ``parse`` reads them from the rules
files (the ``- correlation:`` item), ``state`` is the JSON-able per-group
state, and ``evaluate`` is the one implementation of the windows, used by
``peregrine scan`` and by the worker alike.
"""

from pipeline.correlation.evaluate import CorrelationAlert, CorrelationEvaluator
from pipeline.correlation.model import CorrelationLimits, DistinctCount, Sequence, Step, Threshold
from pipeline.correlation.parse import CorrelationLoader, load_correlations

__all__ = [
    "CorrelationAlert",
    "CorrelationEvaluator",
    "CorrelationLimits",
    "CorrelationLoader",
    "DistinctCount",
    "Sequence",
    "Step",
    "Threshold",
    "load_correlations",
]
