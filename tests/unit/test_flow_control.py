"""Flow control of the worker's stream queues: a resume while the flow runs keeps the
queued events (Faust's own resume emptied them: a record fetched while recovery sought
the stream partitions was lost, see pipeline/stream/flow_control.py)."""

from __future__ import annotations

import asyncio

from mode.utils.queues import FlowControlEvent, FlowControlQueue

from pipeline.stream.flow_control import ResumeOnlyClearsAfterSuspend


def queue_of(flow_control: FlowControlEvent) -> FlowControlQueue:
    return FlowControlQueue(flow_control=flow_control, clear_on_resume=True)


def recovery_sequence(flow_control: FlowControlEvent) -> FlowControlQueue:
    """What Faust does after an assignment: suspend, resume to read the changelogs,
    a stream record arrives while the stream partitions are sought, resume again."""
    queue = queue_of(flow_control)
    flow_control.suspend()
    flow_control.resume()  # "Resuming flow..." to read the changelogs
    queue.put_nowait("first event after the restart")
    flow_control.resume()  # Recovery.on_recovery_completed
    return queue


def test_faust_flow_control_drops_an_event_queued_while_running():
    # the upstream behaviour this module exists for; if Faust changes it, this fails
    assert recovery_sequence(FlowControlEvent()).qsize() == 0


def test_a_resume_while_running_keeps_the_queued_events():
    queue = recovery_sequence(ResumeOnlyClearsAfterSuspend())
    assert queue.qsize() == 1
    assert queue.get_nowait() == "first event after the restart"


def test_a_resume_after_a_suspension_still_empties_the_queues():
    flow_control = ResumeOnlyClearsAfterSuspend()
    flow_control.resume()
    queue = queue_of(flow_control)
    queue.put_nowait("event of the revoked assignment")
    flow_control.suspend()
    assert not flow_control.is_active()
    flow_control.resume()
    assert flow_control.is_active()
    assert queue.qsize() == 0


def test_a_resume_while_running_releases_no_waiter_twice_and_stays_active():
    async def scenario() -> bool:
        flow_control = ResumeOnlyClearsAfterSuspend()
        waiter = asyncio.ensure_future(flow_control.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()  # initially suspended, as Faust's
        flow_control.resume()
        await asyncio.wait_for(waiter, 5)
        flow_control.resume()
        await asyncio.wait_for(flow_control.acquire(), 5)
        return flow_control.is_active()

    assert asyncio.run(scenario())


def test_the_worker_app_uses_it():
    from agents.app import app

    assert isinstance(app.flow_control, ResumeOnlyClearsAfterSuspend)
