"""The bearer token the API server sends (``users[].user.token`` of its webhook
kubeconfig), compared in constant time. A token file is re-read when it
changes, so a rotated Secret takes effect without a restart."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pipeline.errors import ConfigError


class BearerToken:
    def __init__(self, token: str | None = None, path: Path | None = None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._expected: bytes | None = token.strip().encode("utf-8") if token is not None else None
        if path is not None:
            self._reload()

    @property
    def required(self) -> bool:
        return self._expected is not None

    def _reload(self) -> None:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            text = self._path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:  # a file that is not UTF-8 answered 500 at every post
            if self._expected is not None:
                return  # keep the last good token while a Secret is being swapped
            raise ConfigError(f"--token-file {self._path}: {getattr(error, 'strerror', None) or error}") from None
        if not text:
            if self._expected is not None:
                return
            raise ConfigError(f"--token-file {self._path} is empty")
        self._expected = text.encode("utf-8")
        self._stamp = stamp

    def accepts(self, authorization: str | None) -> bool:
        """Does an ``Authorization`` header carry the token? True when none is required."""
        if self._path is not None:
            self._reload()
        if self._expected is None:
            return True
        if not authorization:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # surrogateescape: a header that is not UTF-8 (no credentials needed to send one) was a 500
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._expected)
