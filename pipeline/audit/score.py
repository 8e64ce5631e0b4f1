"""The audit score, computed exactly as Polaris computes it.

Polaris (pkg/validator/summary.go, ``CountSummary.GetScore``) counts every
result: a success adds 2 to both numerator and denominator, a failed
``warning`` adds 1 to the denominator, a failed ``danger`` adds 2::

    score = trunc(float(2·successes) / float(2·successes + warnings + 2·dangers) * 100)

Ignored and exempt checks produce no result, so they do not count. With no
results at all Polaris would divide by zero; Peregrine reports 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Summary:
    successes: int = 0
    warnings: int = 0
    dangers: int = 0

    @property
    def score(self) -> int:
        total = self.successes * 2 + self.warnings + self.dangers * 2
        if total == 0:
            return 100
        # Same float64 arithmetic and truncation as Go's uint(float64(2s)/float64(total)*100),
        # so e.g. 2s/total = 0.58 gives 57, as Polaris reports, not 58.
        return int(float(self.successes * 2) / float(total) * 100)


def summarize(findings: Iterable) -> Summary:
    successes = warnings = dangers = 0
    for finding in findings:
        if finding.success:
            successes += 1
        elif finding.severity == "warning":
            warnings += 1
        else:
            dangers += 1
    return Summary(successes, warnings, dangers)


def score(findings: Iterable) -> int:
    return summarize(findings).score
