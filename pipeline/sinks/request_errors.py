"""Why OpenSearch refused or could not answer a request of ``peregrine alerts``, in one line.

opensearch-py's exceptions print as their repr: a query that does not parse read
``RequestError(400, 'search_phase_execution_exception', 'Failed to parse query ')``,
which says neither what is wrong nor where, and an unreachable server repeated
its cause twice. OpenSearch puts the useful part in the error's ``caused_by``
chain (Lucene's "Cannot parse 'AND x': Encountered ... at line 1, column 0").
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError, PeregrineError, StackError


def _causes(error: Any) -> list[dict[str, Any]]:
    """The error object and its ``caused_by`` chain, outermost first."""
    chain: list[dict[str, Any]] = []
    while isinstance(error, dict) and len(chain) < 16:
        chain.append(error)
        error = error.get("caused_by")
    return chain


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else text


def refusal_reason(info: Any) -> tuple[str, str] | None:
    """(type, reason) of the most telling cause in an OpenSearch error body: a parse
    error of the query where there is one, else the innermost cause."""
    if not isinstance(info, dict) or not isinstance(info.get("error"), dict):
        return None
    chain = _causes(info["error"])
    root = info["error"].get("root_cause")
    if len(chain) == 1 and isinstance(root, list) and root and isinstance(root[0], dict):
        chain += _causes(root[0])
    parse = [cause for cause in chain if cause.get("type") == "parse_exception" and cause.get("reason")]
    if parse:
        return "parse_exception", _first_line(str(parse[0]["reason"]))
    with_reason = [cause for cause in chain if cause.get("reason")]
    if not with_reason:
        return None
    return str(with_reason[-1].get("type", "")), _first_line(str(with_reason[-1]["reason"]))


def request_failure(url: str, error: Exception) -> PeregrineError:
    """The error the CLI prints for ``error`` from OpenSearch at ``url``: a query that
    does not parse is the user's (:class:`ConfigError`), the rest a :class:`StackError`."""
    from opensearchpy.exceptions import ConnectionError as Unreachable
    from opensearchpy.exceptions import TransportError

    if isinstance(error, Unreachable):
        cause = error.info if isinstance(error.info, Exception) else error.error
        return StackError(f"cannot reach OpenSearch at {url}: {str(cause) or type(cause).__name__}")
    if isinstance(error, TransportError) and isinstance(error.status_code, int):
        found = refusal_reason(error.info)
        if found is not None and found[0] == "parse_exception":
            return ConfigError(f"the query does not parse: {found[1]}")
        if found is not None:
            return StackError(f"OpenSearch at {url} refused the request (HTTP {error.status_code}, {found[0]}): {found[1]}")
    return StackError(f"OpenSearch at {url}: {type(error).__name__}: {error}")
