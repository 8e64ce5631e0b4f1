"""Alerts into OpenSearch: bulk ``create`` with the alert's uuid as ``_id``.

``add`` buffers; ``flush`` writes the buffer and returns only when OpenSearch
has accepted every alert (or rejected it for good). The worker acks its Kafka
messages after ``flush`` returns, so an alert is never acknowledged before it
is stored.

- Exactly once: ``_id`` is the alert's deterministic uuid and the op is
  ``create``; a 409 (version conflict) means it is already stored, which
  counts as success. A replay after a crash re-sends and gets 409s.
- Daily indices ``<prefix>YYYY.MM.DD`` from the alert's own time (UTC).
- The index template (typed mappings of the alert fields) is installed before
  the first bulk request, under the same retries: a worker started while
  OpenSearch is down installs it when OpenSearch comes up, before any index
  is created without it.
- OpenSearch unavailable (connection refused, timeout, 429, 5xx, a shard not
  ready): retried with exponential backoff, forever. The worker stops taking
  new batches meanwhile: that is the backpressure; nothing is dropped.
- An alert OpenSearch refuses for good (a 4xx other than 409/429) is handed
  back to the caller, which dead-letters it rather than blocking the stream.
- A bulk request carries at most ``MAX_BULK_BYTES`` of documents (OpenSearch
  refuses a body over ``http.max_content_length``, 100 MB by default, and
  alerts with long values can be large): a larger buffer goes in several.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import orjson

from pipeline.stack.settings import ALERTS_INDEX_PREFIX, ALERTS_TEMPLATE_NAME

log = logging.getLogger("peregrine.sink.opensearch")

RETRYABLE_ITEM_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Rejected:
    doc_id: str
    index: str
    status: int
    reason: str
    document: bytes


MAX_BULK_BYTES = 16 << 20  # a bulk request's documents; OpenSearch refuses a body over http.max_content_length (100 MB)


def _first_chunk(items: list[tuple[str, str, bytes]], max_bytes: int) -> int:
    """How many of ``items`` (at least one) go in the next bulk request."""
    size = 0
    for count, (_, _, source) in enumerate(items):
        size += len(source) + 128  # the action line
        if size > max_bytes and count:
            return count
    return len(items)


def daily_index(prefix: str, time_ns: int) -> str:
    day = datetime.fromtimestamp(time_ns // 1_000_000_000, tz=timezone.utc)
    return f"{prefix}{day:%Y.%m.%d}"


def template_for_prefix(template: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """The alert index template (deploy/opensearch/alerts-template.json, for
    ``peregrine-alerts-*``) as (name, body) for the indices of ``prefix``.

    The default prefix keeps the file's name and pattern (what ``peregrine stack up``
    installs). Another prefix gets a template of its own, named after it, whose
    pattern is ``<prefix>*``: without it, a worker with ``PEREGRINE_INDEX_PREFIX=soc-``
    wrote daily indices that no template matched, with dynamic mappings (rule and
    priority as text, so ``peregrine alerts report`` could not aggregate them). Its
    priority grows with the prefix's length, so that where two prefixes nest
    (``peregrine-alerts-`` and ``peregrine-alerts-eu-``) the longer one's template
    applies, and OpenSearch never sees two overlapping templates of equal priority."""
    if prefix == ALERTS_INDEX_PREFIX:
        return ALERTS_TEMPLATE_NAME, template
    body = dict(template, index_patterns=[f"{prefix}*"], priority=int(template.get("priority", 100)) + len(prefix))
    return template_name_for_prefix(prefix), body


def template_name_for_prefix(prefix: str) -> str:
    """The name of the alert template of ``prefix``'s indices (see :func:`template_for_prefix`)."""
    if prefix == ALERTS_INDEX_PREFIX:
        return ALERTS_TEMPLATE_NAME
    return f"{ALERTS_TEMPLATE_NAME}--{prefix.rstrip('-_.') or prefix}"


class AlertSink:
    """Buffer alert documents; ``flush`` stores them, retrying until accepted."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        request_timeout_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        client: Any = None,
        template: dict[str, Any] | None = None,
        template_name: str = ALERTS_TEMPLATE_NAME,
        auth: dict[str, Any] | None = None,
    ) -> None:
        """``auth``: basic auth / CA options for the client (pipeline.stream.credentials.opensearch_options)."""
        from opensearchpy import AsyncOpenSearch

        self.url = url
        self.prefix = prefix
        self.client = client or AsyncOpenSearch(hosts=[url], timeout=request_timeout_s, max_retries=0, retry_on_timeout=False,
                                                **(auth or {}))
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.on_retry = on_retry
        self._pending: list[tuple[str, str, bytes]] = []  # (index, _id, source json)
        self.stored = 0
        self.duplicates = 0
        self.retries = 0
        self._template = template
        self._template_name = template_name
        self.max_bulk_bytes = MAX_BULK_BYTES

    async def _install_template(self) -> None:
        await self.client.indices.put_index_template(name=self._template_name, body=self._template)
        self._template = None

    def add(self, doc_id: str, time_ns: int, document: bytes) -> None:
        self._pending.append((daily_index(self.prefix, time_ns), doc_id, document))

    def __len__(self) -> int:
        return len(self._pending)

    def discard(self) -> None:
        """Forget the buffered alerts (their batch was given up, unacked: it is processed again)."""
        self._pending = []

    async def flush(self) -> list[Rejected]:
        """Store every buffered alert. Returns the ones refused for good."""
        pending, self._pending = self._pending, []
        rejected: list[Rejected] = []
        delay = self.backoff_initial_s
        while pending:
            chunk = _first_chunk(pending, self.max_bulk_bytes)
            try:
                if self._template is not None:
                    await self._install_template()
                retry, refused = await self._bulk(pending[:chunk])
            except asyncio.CancelledError:
                self._pending = pending + self._pending
                raise
            except Exception as error:  # noqa: BLE001 - any transport failure is retried
                await asyncio.sleep(self._retry_delay(f"OpenSearch at {self.url} unavailable ({type(error).__name__}: {error})", delay))
                delay = min(delay * 2, self.backoff_max_s)
                continue
            rejected += refused
            pending = retry + pending[chunk:]
            if retry:
                await asyncio.sleep(self._retry_delay(f"OpenSearch refused {len(retry)} alerts for now", delay))
                delay = min(delay * 2, self.backoff_max_s)
        return rejected

    def _retry_delay(self, what: str, delay: float) -> float:
        """Say why and when the sink retries; returns ``delay`` plus up to a tenth of it, so that
        the workers held by one outage do not all come back to OpenSearch at the same instant."""
        self.retries += 1
        delay += random.uniform(0, delay / 10)
        message = f"{what}; retrying in {delay:.1f}s (alerts are held, offsets not committed)"
        log.warning(message)
        if self.on_retry is not None:
            self.on_retry(message)
        return delay

    async def _bulk(self, items: list[tuple[str, str, bytes]]) -> tuple[list[tuple[str, str, bytes]], list[Rejected]]:
        lines: list[bytes] = []
        for index, doc_id, source in items:
            lines.append(orjson.dumps({"create": {"_index": index, "_id": doc_id}}))
            lines.append(source)
        body = b"\n".join(lines) + b"\n"
        response = await self.client.bulk(body=body)
        if not response.get("errors"):
            self.stored += len(items)
            return [], []
        retry: list[tuple[str, str, bytes]] = []
        refused: list[Rejected] = []
        for item, result in zip(items, response["items"]):
            outcome = result.get("create", {})
            status = outcome.get("status", 500)
            if status in (200, 201):
                self.stored += 1
            elif status == 409:
                self.duplicates += 1
            elif status in RETRYABLE_ITEM_STATUS:
                retry.append(item)
            else:
                error = outcome.get("error", {})
                reason = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
                refused.append(Rejected(item[1], item[0], status, reason, item[2]))
        return retry, refused

    async def close(self) -> None:
        await self.client.close()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, step_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(step_s)
    return False
