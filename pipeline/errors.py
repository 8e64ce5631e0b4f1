"""One exception hierarchy for everything Peregrine reports to a user.

Every error a user can cause (a bad rule, a bad event, a misconfigured stack)
is a :class:`PeregrineError`. The CLI prints ``str(error)`` and exits non-zero;
it never shows a traceback for one of these.
"""

from __future__ import annotations

from dataclasses import dataclass


class PeregrineError(Exception):
    """Root of every error Peregrine raises on purpose."""


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where something is in a file: 1-based line and column."""

    path: str | None
    line: int
    col: int

    def __str__(self) -> str:
        prefix = f"{self.path}:" if self.path else ""
        return f"{prefix}{self.line}:{self.col}"


class RuleError(PeregrineError):
    """A problem in a rules file or a condition, with where it is.

    ``source_line`` is the text of the offending line; when given, ``str()``
    shows it with a caret under ``location.col``, like a compiler does.
    """

    def __init__(
        self,
        message: str,
        location: SourceLocation | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.source_line = source_line

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        if self.source_line is None or self.location is None:
            return head
        line = self.source_line.rstrip("\n")
        caret = " " * max(self.location.col - 1, 0) + "^"
        return f"{head}\n    {line}\n    {caret}"


class ConditionSyntaxError(RuleError):
    """A condition that does not parse."""


class RuleLoadError(RuleError):
    """A rules file that parses but is wrong: unknown field, macro or list,
    an invalid key, a bad append or override, an unknown priority..."""


class RuleErrors(RuleError):
    """Every error found in one load, when errors are collected, not raised one by one."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} error(s) in rules")

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class EventError(PeregrineError):
    """An event that cannot be decoded or does not fit its schema."""


class ConfigError(PeregrineError):
    """A setting that is missing or wrong."""


class StackError(PeregrineError):
    """The local Kafka / OpenSearch stack cannot be installed, started or reached."""


class AuditError(PeregrineError):
    """A manifest or a configuration check that cannot be read."""
