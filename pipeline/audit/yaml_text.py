"""YAML text -> its documents, for the configuration audit's manifests and Polaris config.

``yaml.safe_load_all`` with one more refusal: a document whose aliases are recursive or expand
past what the file could hold (pipeline/yaml_aliases.py) is not constructed but named, with its
line and column: the checks walk each object, and a "billion laughs" in a pod's env held
``peregrine audit`` for ever with gigabytes. And the words of a YAML error, at its line and
column in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pipeline.yaml_aliases import MAX_ALIAS_EXPANSION, alias_problem


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A document that parses but is not read: why (with its line and column in the file)."""

    message: str


def load_documents(text: str, first_line: int = 0) -> list[Any]:
    """Every document of ``text`` (``yaml.safe_load_all``), an :class:`Unreadable` in the place of
    one whose aliases are recursive or expand too far. ``first_line``: the 0-based file line
    ``text`` starts on. Raises yaml.YAMLError, or RecursionError (PyYAML's parser recurses once
    per level of nesting), as safe_load_all does."""
    limit = MAX_ALIAS_EXPANSION + len(text)
    loader = yaml.SafeLoader(text)
    documents: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            problem = alias_problem(node, limit)
            if problem is None:
                documents.append(loader.construct_document(node))
            else:
                why, where = problem
                mark = where.start_mark
                documents.append(Unreadable(f"{why}, at line {first_line + mark.line + 1}, column {mark.column + 1}"))
    finally:
        loader.dispose()
    return documents


def yaml_error_text(error: Exception, first_line: int = 0) -> str:
    """A one-line account of a YAML error, at its line and column in the file (1-based);
    ``first_line`` is the 0-based file line the parsed text started on."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    parts = []
    for words, mark in ((error.context, error.context_mark), (error.problem, error.problem_mark)):
        if words and mark is not None:
            parts.append(f"{words} at line {first_line + mark.line + 1}, column {mark.column + 1}")
        elif words:
            parts.append(words)
    return "; ".join(parts) or type(error).__name__
