"""Flow control that never drops events queued while the flow was running.

Faust's ``FlowControlEvent.resume()`` empties every stream and changelog queue,
also when the flow was not suspended. After a rebalance, Faust's recovery
resumes the flow to read the changelogs, then (``Recovery.on_recovery_completed``)
resumes the stream partitions, awaits the seek to the committed offsets and only
then calls ``flow_control.resume()`` again. A record fetched in that window is
already in its stream's queue, with its read offset recorded: the second resume
deletes it and it is never fetched again, so the worker silently skips it (seen
as a restarted worker that never processed the first event after its restart).

Emptying the queues is right when the flow comes back from a suspension (what was
queued before belongs to the revoked assignment and will be fetched again from
the committed offsets); while the flow runs, the queued events are current.
"""

from __future__ import annotations

import logging

from mode.utils.queues import FlowControlEvent

logger = logging.getLogger(__name__)


class ResumeOnlyClearsAfterSuspend(FlowControlEvent):
    """``resume()`` empties the queues only when the flow was suspended."""

    def resume(self) -> None:
        if self.is_active():
            queued = sum(queue.qsize() for queue in self._queues)
            if queued:
                logger.info("flow control resumed while running: kept %d queued events", queued)
            return
        super().resume()
