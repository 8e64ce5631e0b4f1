"""A correlation's output: the rules' :class:`~pipeline.alerts.output.OutputFormat`, reading
what a completed match has instead of one event.

* ``%field``: from the event that completed the match; a time field (``%evt.time``,
  ``%evt.datetime``...) is that event's time;
* ``%step.<name>.<field>``: from the event that matched that step, as recorded in the
  group's state when it matched (:attr:`CompiledOutput.records` says what to record); a time
  field is that event's time;
* ``%corr.count``, ``%corr.distinct``, ``%corr.group`` (``field=value ...``), ``%corr.rule``.

Tokens, transformers (``%toupper(step.drop.proc.name)``, ``%basename(tolower(corr.rule))``),
time texts and how values print (``<NA>``, lists as ``(a,b)``) are the rules' own. Every
field and step name is checked at load; ``fail(offset, message)`` gives the located error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.alerts.output import OutputFormat, Reader, bind_field, time_field, value_text
from pipeline.fields.registry import FieldRegistry, UnknownField
from pipeline.rules.resolve import OutputToken

Extract = Callable[[Any], Any]
_NONE: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Match:
    """What a completed match's output reads: the event that completed it, the record of the
    event of each step (``{"t": time, "f": {field: value}}``, by step name), the group, the
    number of events and of distinct values, and the correlation's name."""

    event: Any
    steps: dict[str, dict[str, Any]]
    group: dict[str, Any]
    count: int
    distinct: int
    rule: str


@dataclass(frozen=True, slots=True)
class CompiledOutput:
    """An output, compiled: the format, and per step name the (field, extractor) pairs whose
    values a step's event must record when it matches (its ``%step.<name>.<field>`` s)."""

    format: OutputFormat
    records: dict[str, tuple[tuple[str, Extract], ...]]


def _group(match: Match) -> str:
    return " ".join(f"{name}={value_text(value)}" for name, value in match.group.items())


SPECIAL: dict[str, Extract] = {
    "count": lambda match: match.count,
    "distinct": lambda match: match.distinct,
    "group": _group,
    "rule": lambda match: match.rule,
}


def compile_output(
    text: str,
    registry: FieldRegistry,
    correlation: str,
    step_names: set[str],
    fail: Callable[[int, str], Exception],
) -> CompiledOutput:
    """``text`` (an output as written) -> its :class:`CompiledOutput`. Raises what ``fail``
    returns, at the offset in ``text`` of the name at fault, for an unknown field, step or
    ``%corr.`` name."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    records: dict[str, dict[str, Extract]] = {}

    def bound(token: OutputToken, where: int) -> Extract:
        try:
            return bind_field(registry, token)
        except UnknownField as error:
            message = error.args[0] if error.args else f"unknown field '{token.name}'"
            raise fail(lead + where, f"{message} (in the output)") from None

    def reader(token: OutputToken) -> Reader:
        name, where = token.name or "", token.name_start
        if name.startswith("corr."):
            special = name[5:]
            if special not in SPECIAL:
                known = ", ".join("%corr." + s for s in sorted(SPECIAL))
                raise fail(lead + where, f"unknown output field '%{name}'; expected one of {known}")
            if token.arg is not None:
                raise fail(lead + where, f"'%{name}' takes no argument, got '%{name}[{token.arg}]'")
            return SPECIAL[special], None
        if name.startswith("step."):
            step, _, field_name = name[5:].partition(".")
            if step not in step_names:
                raise fail(lead + where, f"'%{name}' names no step of correlation '{correlation}' "
                                         f"(steps: {', '.join(sorted(step_names)) or 'none'})")
            if not field_name:
                raise fail(lead + where, f"'%{name}' needs a field after the step name, e.g. %step.{step}.proc.cmdline")
            field = dataclasses.replace(token, name=field_name, transformers=())
            extract = bound(field, where)
            timed = time_field(dataclasses.replace(token, name=field_name))
            if timed is not None:  # the time of the step's event
                return (lambda match: match.steps.get(step, _NONE).get("t")), timed
            key = field.key
            records.setdefault(step, {})[key] = extract
            return (lambda match: match.steps.get(step, _NONE).get("f", _NONE).get(key)), None
        extract = bound(dataclasses.replace(token, transformers=()), where)
        timed = time_field(token)
        if timed is not None:
            return None, timed  # the alert's time: the completing event's
        return (lambda match: extract(match.event)), None

    output = OutputFormat(stripped, registry, reader)
    return CompiledOutput(output, {step: tuple(sorted(fields.items())) for step, fields in records.items()})


__all__ = ["CompiledOutput", "Match", "compile_output"]
