"""Falco rule exceptions -> the condition text Falco appends to the rule.

Falco does not give exceptions their own semantics: it writes each one as
text and appends ``and not (...)`` to the rule's condition, then parses the
whole. We build the same text, character for character (so a value with a
space is double-quoted, a bare value is left bare and may name a list, a
value for a list operator is parenthesised), and remember which YAML scalar
each piece came from so an error in it points into the file.

Falco's shapes:

* one field: ``fields: proc.name``, ``comps: in`` (the default; only ``in``,
  ``pmatch`` or ``intersects``), ``values: [a, b]`` ->
  ``(proc.name in (a, b))``;
* several fields: ``fields: [proc.name, fd.name]``, ``comps`` a list of the
  same length (default all ``=``), each value a tuple of the same length ->
  ``(( proc.name = a and  fd.name = b) or (...))`` (Falco's spacing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import SourceLocation
from pipeline.rules.ast import BINARY_OPERATORS, LIST_OPERATORS, UNARY_OPERATORS
from pipeline.rules.model import RuleException
from pipeline.rules.yaml_source import SpannedText, TextMap

SUPPORTED_COMPS = BINARY_OPERATORS | UNARY_OPERATORS
SINGLE_FIELD_COMPS = ("in", "pmatch", "intersects")


class ExceptionProblem(ValueError):
    """An exception that Falco would reject; ``where`` says which part, when known."""

    def __init__(self, message: str, where: "Entry | None" = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(slots=True)
class Entry:
    """A scalar or a sequence of entries (Falco's ``rule_exception_info::entry``)."""

    item: str | None = None
    items: list["Entry"] | None = None
    scalar: TextMap | None = None  # where a scalar is in the file
    location: SourceLocation | None = None

    @property
    def is_list(self) -> bool:
        return self.items is not None

    def plain(self):
        """The entry as plain data: a string, or a tuple of plain entries."""
        if self.items is None:
            return self.item
        return tuple(entry.plain() for entry in self.items)


@dataclass(slots=True)
class ExceptionInfo:
    name: str
    location: SourceLocation
    source_line: str
    fields: Entry | None = None
    comps: Entry | None = None
    values: list[Entry] = field(default_factory=list)
    values_given: bool = False

    def to_model(self) -> RuleException:
        return RuleException(
            name=self.name,
            fields=self.fields.plain() if self.fields is not None else (),
            comps=self.comps.plain() if self.comps is not None else (),
            values=tuple(value.plain() for value in self.values),
            location=self.location,
        )


def validate(exception: ExceptionInfo) -> None:
    """Check fields and comps as Falco does, filling in the default comps. Raises ExceptionProblem."""
    fields, comps = exception.fields, exception.comps
    if fields is None:
        raise ExceptionProblem(f"exception '{exception.name}' needs a 'fields' key (a field or a list of fields)")
    if fields.is_list:
        if comps is None:
            comps = exception.comps = Entry(items=[Entry(item="=") for _ in fields.items])
        if not comps.is_list or len(comps.items) != len(fields.items):
            raise ExceptionProblem(
                f"exception '{exception.name}': fields and comps lists must have equal length", comps
            )
        for comp in comps.items:
            if comp.is_list or comp.item not in SUPPORTED_COMPS:
                raise ExceptionProblem(f"'{comp.plain()}' is not a supported comparison operator", comp)
        for one in fields.items:
            if one.is_list:
                raise ExceptionProblem(f"exception '{exception.name}': each field must be a field name, not a list", one)
    else:
        if comps is None:
            comps = exception.comps = Entry(item="in")
        if comps.is_list:
            raise ExceptionProblem(f"exception '{exception.name}': fields and comps must both be strings", comps)
        if comps.item not in SINGLE_FIELD_COMPS:
            raise ExceptionProblem(
                f"exception '{exception.name}': when fields is a single value, comps must be one of (in, pmatch, intersects)",
                comps,
            )


def quote_item(text: str) -> str:
    """Falco's quoting: a value with a space gets double quotes unless it already starts with a quote."""
    if " " in text and text[:1] not in ('"', "'"):
        return '"' + text + '"'
    return text


def paren_item(text: str) -> str:
    return text if text.startswith("(") else "(" + text + ")"


class _Writer:
    """Appends text and records which scalar each piece came from."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int, TextMap, int]] = []

    def add(self, text: str, entry: Entry | None = None, shift: int = 0) -> None:
        if entry is not None and entry.scalar is not None:
            self.spans.append((self.length, self.length + len(text), entry.scalar, shift))
        self.parts.append(text)
        self.length += len(text)

    def add_value(self, entry: Entry, text: str) -> None:
        self.add(text, entry, shift=1 if text != entry.item and text[:1] in "\"(" else 0)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def condition_text(exception: ExceptionInfo) -> SpannedText | None:
    """The ``(...)`` Falco puts after ``and not``, or None when the exception has no values.

    Call :func:`validate` first. Raises ExceptionProblem for values of the wrong shape.
    """
    fields, comps = exception.fields, exception.comps
    assert fields is not None and comps is not None, "validate() first"
    out = _Writer()
    if not fields.is_list:
        for index, value in enumerate(exception.values):
            if value.is_list:
                raise ExceptionProblem(
                    f"exception '{exception.name}': with a single field, values must be a list of strings", value
                )
            if index == 0:
                out.add("(")
                out.add(fields.item, fields)
                out.add(" ")
                out.add(comps.item, comps)
                out.add(" (")
            else:
                out.add(", ")
            out.add_value(value, quote_item(value.item))
        if not out.parts:
            return None
        out.add("))")
    else:
        out.add("(")
        for row_index, row in enumerate(exception.values):
            if not row.is_list or len(row.items) != len(fields.items):
                raise ExceptionProblem(
                    f"exception '{exception.name}': each value must be a list with one entry per field "
                    f"({len(fields.items)})",
                    row,
                )
            out.add(" or " if row_index else "")
            out.add("(")
            for k, (one_field, comp) in enumerate(zip(fields.items, comps.items)):
                out.add(" and " if k else "")
                out.add(" ")
                out.add(one_field.item, one_field)
                out.add(" ")
                out.add(comp.item, comp)
                out.add(" ")
                value = row.items[k]
                if value.is_list:
                    out.add("(")
                    for n, alternative in enumerate(value.items):
                        if alternative.is_list:
                            raise ExceptionProblem("an exception value may be a list of strings, not of lists", alternative)
                        out.add(", " if n else "")
                        out.add_value(alternative, quote_item(alternative.item))
                    out.add(")")
                elif comp.item in LIST_OPERATORS:
                    out.add_value(value, paren_item(value.item))
                else:
                    out.add_value(value, quote_item(value.item))
            out.add(")")
        out.add(")")
        if out.text == "()":
            return None
    return SpannedText(out.text, out.spans, (exception.location, exception.source_line))


def falco_condition(condition: str, exceptions: list[ExceptionInfo]) -> str:
    """The full condition text Falco compiles for a rule with exceptions."""
    if not exceptions:
        return condition
    text = "(" + condition + ")"
    for exception in exceptions:
        part = condition_text(exception)
        if part is not None:
            text += " and not " + part.text
    return text
