"""The webhook's limit on open files: raised to the hard limit at start-up, and the
connection cap it leaves room for.

Every connection a client holds open is a file descriptor until the read
timeout closes it. A shell's default soft limit is often 1024, far below the
hard limit (Go's runtime raises it the same way at start-up), so a burst of
slow clients could exhaust it while the hard limit still had room. The default
connection cap (``PEREGRINE_WEBHOOK_MAX_CONNECTIONS``) is that limit less what
the rest of the process needs: its Kafka connections (one a broker), the
listening socket, the event loop's selector, stdio, and files it opens now and
then (a rotated token file).
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("peregrine.webhook")

#: Taken as the limit when there is none (RLIM_INFINITY).
UNLIMITED = 1 << 20
#: Descriptors kept from connections: a tenth of the limit, and never fewer than this.
MIN_RESERVED = 64


def raise_open_files_limit() -> int:
    """Set the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force (the
    old one when the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, error)
        return soft
    return target


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE in force (:data:`UNLIMITED` when there is none)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def reserved_files(open_files: int) -> int:
    """How many of ``open_files`` descriptors the default cap leaves to the rest of the process."""
    return max(MIN_RESERVED, open_files // 10)


def default_max_connections(open_files: int) -> int:
    """The connection cap when none is set: the open-files limit less :func:`reserved_files`
    (at least 1)."""
    return max(1, open_files - reserved_files(open_files))


__all__ = ["default_max_connections", "open_files_limit", "raise_open_files_limit", "reserved_files"]
