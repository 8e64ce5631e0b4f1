"""The webhook's limit on open files: raised to the hard limit at start-up.

Every connection a client holds open is a file descriptor until the read
timeout closes it, and there is no cap on connections (aiohttp offers no hook
where they are accepted). A shell's default soft limit is often 1024, far
below the hard limit (Go's runtime raises it the same way at start-up), so a
burst of slow clients could exhaust it while the hard limit still had room.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("peregrine.webhook")


def raise_open_files_limit() -> int:
    """Set the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force (the
    old one when the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, error)
        return soft
    return target


__all__ = ["raise_open_files_limit"]
