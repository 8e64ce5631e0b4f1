"""Falco output formats (``%proc.name``, ``%proc.aname[2]``, ``%evt.arg.mode``,
``%jevt.value[/x]``) compiled once per rule into a formatter; a correlation's output
is compiled by the same one, reading what a match has (pipeline/correlation/output.py).

Falco renders a missing value as ``<NA>`` in text and ``null`` in JSON; a
list field as ``(a,b)`` in text and an array in JSON. The time fields
(``evt.time``, ``evt.time.iso8601``, ``evt.datetime``, ``evt.rawtime``...) are
computed from the alert's event time for every source, as Falco does for
plugin sources too. Field references are bound once against the source's
registry, so formatting an alert is a few dict lookups.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from pipeline.errors import RuleLoadError
from pipeline.fields.registry import MISSING, FieldRegistry, UnknownField
from pipeline.json_bytes import writable
from pipeline.rules.resolve import OutputToken, output_tokens

NA = "<NA>"
# Falco drops %container.info from outputs (the container plugin adds those fields itself).
_DROPPED = frozenset({"container.info"})


def _transformed(extract: Callable[[Any], Any], transformers: tuple[str, ...]) -> Callable[[Any], Any]:
    """``extract`` with Falco's transformers applied, innermost first (``%toupper(user.name)``)."""
    if not transformers:
        return extract
    from pipeline.rules.operators import TRANSFORMS

    chain = tuple(TRANSFORMS[name] for name in reversed(transformers))

    def value(event: Any) -> Any:
        found = extract(event)
        for transform in chain:
            if found is MISSING or found is None:
                return MISSING
            found = transform(found)
        return MISSING if found is None else found

    return value


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)


def clock_ns(ns: int) -> str:
    """Falco's ``evt.time`` text: ``HH:MM:SS.nnnnnnnnn`` (UTC here; Falco uses the host's zone)."""
    return f"{_utc(ns):%H:%M:%S}.{ns % 1_000_000_000:09d}"


def iso8601_ns(ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``, as Falco's JSON ``time``."""
    return f"{_utc(ns):%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


# name -> (text of the time, JSON value of the time)
TIME_FIELDS: dict[str, Callable[[int], tuple[str, Any]]] = {
    "evt.time": lambda ns: (clock_ns(ns), ns),
    "evt.time.s": lambda ns: (f"{_utc(ns):%H:%M:%S}",) * 2,
    "evt.time.iso8601": lambda ns: (iso8601_ns(ns),) * 2,
    "evt.datetime": lambda ns: (f"{_utc(ns):%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d}",) * 2,
    "evt.datetime.s": lambda ns: (f"{_utc(ns):%Y-%m-%d %H:%M:%S}",) * 2,
    "evt.rawtime": lambda ns: (str(ns), ns),
    "evt.rawtime.s": lambda ns: (str(ns // 1_000_000_000), ns // 1_000_000_000),
    "evt.rawtime.ns": lambda ns: (str(ns % 1_000_000_000), ns % 1_000_000_000),
}


def value_text(value: Any) -> str:
    """A field value as Falco prints it in text."""
    if value is MISSING or value is None:
        return NA
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return "(" + ",".join(value_text(v) for v in value) + ")"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def value_json(value: Any) -> Any:
    """A field value as Falco puts it in ``output_fields``: null when missing."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [value_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return value
    return str(value)


TimeText = Callable[[int], tuple[str, Any]]
# How a format reads one token: (read, time). ``read(event)`` is the value (None: always
# missing); with ``time`` set, ``read(event)`` is the time in ns to print (None: the alert's).
Reader = tuple["Callable[[Any], Any] | None", "TimeText | None"]


def time_field(token: OutputToken) -> TimeText | None:
    """How Falco prints ``token`` when it is a time field (``%evt.time``, ``%evt.datetime``...)
    without an argument or a transformer; None for any other token."""
    if token.arg is not None or token.transformers:
        return None
    return TIME_FIELDS.get(token.name)  # type: ignore[arg-type]


def bind_field(registry: FieldRegistry, token: OutputToken) -> Callable[[Any], Any]:
    """The extractor of ``token``'s field, without its transformers, as an output prints it:
    ``%proc.aname`` is the process itself (libsinsp extracts no ancestor but ``[0]``).
    Raises UnknownField."""
    bound = registry.bind(token.name, token.arg)  # type: ignore[arg-type]
    if bound.any_of:
        bound = registry.bind(token.name, "0")  # type: ignore[arg-type]
    return bound.extract


def event_reader(registry: FieldRegistry | None, text: str) -> Callable[[OutputToken], Reader]:
    """How a rule's output reads its tokens: from the event, through the source's registry
    (None: every non-time field is <NA>). Raises RuleLoadError for a field the source lacks."""

    def read(token: OutputToken) -> Reader:
        timed = time_field(token)
        if timed is not None:
            return None, timed
        if registry is None:
            return None, None
        try:
            return bind_field(registry, token), None
        except UnknownField as error:
            raise RuleLoadError(f"output format '{text}': {error.args[0] if error.args else error}") from None

    return read


class OutputFormat:
    """One output format string, parsed and bound once; ``render`` per alert.

    ``reader`` says where each token's value comes from (default: the event, see
    :func:`event_reader`); the tokenizer, Falco's transformers, the time texts and how a value
    prints are the same whatever it is (a correlation reads its steps' events and its own
    ``%corr.*`` values: pipeline/correlation/output.py)."""

    __slots__ = ("text", "_parts", "_fields")

    def __init__(self, text: str, registry: FieldRegistry | None,
                 reader: Callable[[OutputToken], Reader] | None = None) -> None:
        """``registry``: the source's fields; None leaves every non-time field <NA>.
        Raises RuleLoadError for a field the source does not have."""
        self.text = text
        if reader is None:
            reader = event_reader(registry, text)
        parts: list[str | tuple[str, Any, Any]] = []  # literal, or (key, read, time text)
        fields: list[tuple[str, Any, Any]] = []
        last = 0
        for token in output_tokens(text):
            parts.append(text[last : token.start])
            last = token.end
            if token.name is None:
                parts.append("%")
                continue
            if token.name in _DROPPED:
                continue
            read, timed = reader(token)
            if timed is None and read is not None:
                read = _transformed(read, token.transformers)
            part = (token.key, read, timed)
            parts.append(part)
            fields.append(part)
        parts.append(text[last:])
        self._parts = tuple(p for p in parts if p != "")
        self._fields = tuple(fields)

    @property
    def field_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _, _ in self._fields)

    def render(self, event: Any, time_ns: int) -> tuple[str, dict[str, Any]]:
        """(formatted text, ``output_fields``) for one event; ``time_ns``: the alert's time."""
        out: list[str] = []
        values: dict[str, Any] = {}
        for part in self._parts:
            if part.__class__ is str:
                out.append(part)
                continue
            key, read, timed = part
            if timed is not None:
                if read is None:
                    text, json_value = timed(time_ns)
                else:  # another event's time (a correlation's step): <NA> when it has none
                    ns = read(event)
                    text, json_value = timed(ns) if ns.__class__ is int else (NA, None)
            else:
                try:
                    value = read(event) if read is not None else MISSING
                except Exception:  # noqa: BLE001 - an odd event prints <NA>, never fails the alert
                    value = MISSING
                try:
                    text = value_text(value)
                except RecursionError:  # a list or object nested deeper than Python recurses: cut where json_bytes cuts
                    value = writable(value)
                    text = value_text(value)
                json_value = value_json(value)
            out.append(text)
            values[key] = json_value
        return "".join(out), values
