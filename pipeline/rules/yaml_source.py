"""YAML with positions: every node keeps its file line and column, and every
character of a scalar can be traced back to where it is written.

Rule errors must point into the rules file, not into the condition string the
YAML parser hands over. A condition is often a folded (``>``) or literal
(``|``) block scalar, or a quoted or multi-line plain scalar, so its text is
not a slice of the file: indentation is dropped, line breaks are folded into
spaces, quotes and escapes are decoded. :class:`ScalarText` aligns the
decoded value with the raw text it came from, lazily (only when an error or
warning needs a position), and answers "where is character N of this value".

PyYAML's composer gives nodes with ``start_mark``/``end_mark`` (0-based line
and column); the libyaml-backed loader is used when present because it is ten
times faster and reports the same marks.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import RuleError, RuleLoadError, SourceLocation
from pipeline.yaml_aliases import MAX_ALIAS_EXPANSION, alias_problem

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "SourceText",
    "ScalarText",
    "FixedText",
    "JoinedText",
    "SpannedText",
    "TextMap",
    "compose_documents",
    "describe_kind",
    "read_rules_file",
]


@dataclass(frozen=True, slots=True, eq=False)
class SourceText:
    """One rules file's text, with fast offset <-> (line, col) conversion."""

    path: str | None
    text: str
    line_starts: tuple[int, ...] = field(repr=False, default=())

    @classmethod
    def of(cls, text: str, path: str | None) -> "SourceText":
        if text.startswith("\ufeff"):
            text = text[1:]
        starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                starts.append(index + 1)
        return cls(path, text, tuple(starts))

    def offset(self, line0: int, col0: int) -> int:
        """The text offset of a 0-based (line, column), as YAML marks give them."""
        if line0 >= len(self.line_starts):
            return len(self.text)
        return min(self.line_starts[line0] + col0, len(self.text))

    def line(self, line1: int) -> str:
        """The text of a 1-based line, without its line break."""
        if not 1 <= line1 <= len(self.line_starts):
            return ""
        start = self.line_starts[line1 - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end != -1 else len(self.text)].rstrip("\r")

    def location_at(self, offset: int) -> SourceLocation:
        offset = max(0, min(offset, len(self.text)))
        line0 = bisect.bisect_right(self.line_starts, offset) - 1
        return SourceLocation(self.path, line0 + 1, offset - self.line_starts[line0] + 1)

    def location(self, node_or_mark) -> SourceLocation:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return SourceLocation(self.path, mark.line + 1, mark.column + 1)

    def error(self, message: str, where, cls: type = RuleLoadError):
        """An error at a node, a mark or a SourceLocation, with the file line under it."""
        location = where if isinstance(where, SourceLocation) else self.location(where)
        return cls(message, location, self.line(location.line))


def compose_documents(source: SourceText) -> list[Node]:
    """Every YAML document's root node (empty documents dropped).

    A YAML syntax error becomes a RuleLoadError at PyYAML's problem mark.
    """
    try:
        documents = list(yaml.compose_all(source.text, Loader=_Loader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = f"invalid YAML: {error.problem or error.context or 'syntax error'}"
        if error.context and error.problem:
            message = f"invalid YAML: {error.problem} ({error.context})"
        if mark is None:
            raise RuleLoadError(message, SourceLocation(source.path, 1, 1), source.line(1)) from None
        raise source.error(message, mark) from None
    except yaml.YAMLError as error:  # e.g. a non-printable character
        raise RuleLoadError(f"invalid YAML: {error}", SourceLocation(source.path, 1, 1), source.line(1)) from None
    documents = [doc for doc in documents if doc is not None]
    _check_aliases(source, documents)
    return documents


def _check_aliases(source: SourceText, documents: list[Node]) -> None:
    """Refuse aliases that make the documents infinite or huge once followed
    (pipeline/yaml_aliases.py): every reader that walks the nodes (rules, exceptions,
    correlations) would recurse forever or for hours. Raises RuleLoadError at the node in question."""
    limit = MAX_ALIAS_EXPANSION + len(source.text)
    sizes: dict[int, int] = {}
    for document in documents:
        problem = alias_problem(document, limit, sizes)
        if problem is not None:
            raise source.error(*problem)


def read_rules_file(path: str, report: Callable[[RuleError], None]) -> str | None:
    """A rules file's text (UTF-8), or None once ``report`` has been given why it cannot be read (at its line 1)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        report(RuleLoadError(f"cannot read rules file: {error}", SourceLocation(path, 1, 1)))
        return None


def describe_kind(node: Node) -> str:
    """What a YAML node is, for messages: "a mapping", "a list" or "a scalar"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "a scalar"


class TextMap(Protocol):
    """Text that a condition parser reads, and where each character came from."""

    text: str

    def locate(self, offset: int) -> tuple[SourceLocation, str]: ...


class ScalarText:
    """A YAML scalar's decoded value, able to say where any of its characters is in the file."""

    __slots__ = ("source", "node", "text", "_columns")

    def __init__(self, source: SourceText, node: ScalarNode) -> None:
        self.source = source
        self.node = node
        self.text: str = node.value
        self._columns: list[int] | None = None

    def location(self) -> SourceLocation:
        return self.source.location(self.node)

    def locate(self, offset: int) -> tuple[SourceLocation, str]:
        """File location and line text of the value's character at ``offset``."""
        if self._columns is None:
            self._columns = self._align()
        if not self._columns:
            location = self.source.location(self.node)
        else:
            offset = max(0, min(offset, len(self._columns) - 1))
            location = self.source.location_at(self._columns[offset])
        return location, self.source.line(location.line)

    def _align(self) -> list[int]:
        node, source = self.node, self.source
        start = source.offset(node.start_mark.line, node.start_mark.column)
        end = source.offset(node.end_mark.line, node.end_mark.column)
        style = node.style
        if style in ("|", ">"):
            newline = source.text.find("\n", start, end)
            start = end if newline == -1 else newline + 1  # content starts after the header line
        elif style in ("'", '"'):
            start, end = start + 1, max(start + 1, end - 1)
        return [start + index for index in _align(self.text, source.text[start:end], style)]


def _align(value: str, raw: str, style: str | None) -> list[int]:
    """For each character of ``value``, the index in ``raw`` it was read from.

    ``raw`` is the scalar's text in the file (without quotes or block header).
    The value is (nearly) a subsequence of it: walk both, skipping what YAML
    drops (indentation, trailing blanks, chomped breaks), matching a folded
    space to the line break it replaced, and decoding quote escapes.
    """
    out: list[int] = []
    i = j = 0
    n = len(raw)
    while i < len(value):
        char = value[i]
        if j >= n:
            out.append(max(n - 1, 0))
            i += 1
            continue
        here = raw[j]
        if style == "'" and char == "'" and raw.startswith("''", j):
            out.append(j)
            i, j = i + 1, j + 2
            continue
        if style == '"' and here == "\\":
            following = raw[j + 1] if j + 1 < n else ""
            if following in ("\n", "\r"):  # an escaped line break: both it and the next indentation vanish
                j += 1
                while j < n and raw[j] in " \t\r\n":
                    j += 1
                continue
            out.append(j)
            i += 1
            j += {"x": 4, "u": 6, "U": 10}.get(following, 2)
            continue
        if here == char:
            out.append(j)
            i, j = i + 1, j + 1
            continue
        if char in " \n" and here in "\r\n":  # a folded line break
            out.append(j)
            i, j = i + 1, j + 1
            upcoming = value[i] if i < len(value) else None
            while j < n and raw[j] in " \t\r\n" and raw[j] != upcoming:
                j += 1
            continue
        j += 1  # something YAML dropped: indentation, a trailing blank, a comment marker
    return out


class FixedText:
    """A place in the file with no text of its own (a sequence, a mapping)."""

    __slots__ = ("text", "where")

    def __init__(self, where: tuple[SourceLocation, str], text: str = "") -> None:
        self.text = text
        self.where = where

    def locate(self, offset: int) -> tuple[SourceLocation, str]:
        return self.where


class JoinedText:
    """Several texts joined with a space, as Falco joins a condition and its appends."""

    __slots__ = ("parts", "text", "_starts")

    def __init__(self, parts: list[TextMap]) -> None:
        self.parts = list(parts)
        self.text = " ".join(part.text for part in self.parts)
        starts, offset = [], 0
        for part in self.parts:
            starts.append(offset)
            offset += len(part.text) + 1
        self._starts = starts

    def locate(self, offset: int) -> tuple[SourceLocation, str]:
        index = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        part = self.parts[index]
        inner = offset - self._starts[index]
        if inner >= len(part.text):  # the joining space: point at the end of the previous part
            inner = max(len(part.text) - 1, 0)
        return part.locate(inner)


class SpannedText:
    """Generated text (a Falco exception's condition) whose pieces came from YAML scalars.

    ``spans`` are ``(start, end, scalar, shift)``: text[start:end] was made
    from ``scalar`` (its character k sits at text offset start + shift + k;
    ``shift`` is 1 when a quote was added in front). A character outside every
    span is reported at the nearest span before it, or at ``fallback``.
    """

    __slots__ = ("text", "spans", "fallback")

    def __init__(self, text: str, spans: "list[tuple[int, int, TextMap, int]]", fallback: tuple[SourceLocation, str]) -> None:
        self.text = text
        self.spans = spans
        self.fallback = fallback

    def locate(self, offset: int) -> tuple[SourceLocation, str]:
        best = None
        for start, end, scalar, shift in self.spans:
            if start <= offset < end:
                return scalar.locate(max(offset - start - shift, 0))
            if start <= offset:
                best = (scalar, max(end - start - shift - 1, 0))
        if best is not None:
            return best[0].locate(best[1])
        return self.fallback


def offset_in(text: str, line1: int, col1: int) -> int:
    """The offset of a 1-based (line, column) inside ``text`` (lines split on \\n only)."""
    offset = 0
    for _ in range(line1 - 1):
        newline = text.find("\n", offset)
        if newline == -1:
            break
        offset = newline + 1
    return offset + max(col1 - 1, 0)
