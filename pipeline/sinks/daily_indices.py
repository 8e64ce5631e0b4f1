"""The daily alert indices of one prefix: ``<prefix>YYYY.MM.DD`` and nothing else.

``<prefix>*`` is not that set: the default prefix's pattern ``peregrine-alerts-*``
also matches the indices of a nested prefix (``peregrine-alerts-eu-2025.11.22``,
another worker's) and stray names (``peregrine-alerts-2025.11.22-restored``).
``peregrine alerts`` searches, reports on and deletes only the prefix's own days.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any


def index_day(name: str, prefix: str) -> date | None:
    """The day of the daily index ``name`` of ``prefix``; None for any other name
    (another prefix's, or digits that are no date, such as ``2024.13.45``)."""
    if not name.startswith(prefix):
        return None
    match = re.fullmatch(r"(\d{4})\.(\d{2})\.(\d{2})", name[len(prefix):])
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


async def daily_indices(client: Any, prefix: str, *, closed: bool = False) -> list[str]:
    """The names of ``prefix``'s daily indices in OpenSearch, sorted (open ones, or
    open and closed with ``closed``)."""
    found = await client.indices.get_alias(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True,
                                           expand_wildcards="open,closed" if closed else "open")
    return sorted(name for name in found if index_day(name, prefix) is not None)


def only_indices(names: list[str]) -> dict[str, Any]:
    """A query filter that keeps the documents of ``names`` alone (none when it is empty)."""
    return {"terms": {"_index": list(names)}}
