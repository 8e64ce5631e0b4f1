"""Errors and warnings found while loading rules, kept apart (like pySigma's lint findings).

In the default mode the first error is raised at once. With
``collect=True`` every error is recorded and loading goes on, so one run of
``peregrine rules validate`` shows every problem; the loader then raises
:class:`~pipeline.errors.RuleErrors` at the end and never returns a partial
rule set.
"""

from __future__ import annotations

from pipeline.errors import RuleError, RuleErrors, SourceLocation
from pipeline.rules.model import LoadWarning


class Findings:
    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.errors: list[RuleError] = []
        self.warnings: list[LoadWarning] = []
        self._seen: set[tuple[str, str]] = set()

    def error(self, error: RuleError) -> None:
        if not self.collect:
            raise error
        key = (str(error.location), error.message)
        if key not in self._seen:  # the same problem reached twice (a macro used by many rules)
            self._seen.add(key)
            self.errors.append(error)

    def warn(self, code: str, message: str, location: SourceLocation | None = None, source_line: str | None = None) -> None:
        self.warnings.append(LoadWarning(code, message, location, source_line))

    def fork(self) -> "Findings":
        """A copy to add to without changing this one (one per compile of a loader)."""
        copy = Findings(self.collect)
        copy.errors = list(self.errors)
        copy.warnings = list(self.warnings)
        copy._seen = set(self._seen)
        return copy

    def raise_if_any(self) -> None:
        if self.errors:
            raise RuleErrors(self.errors)
