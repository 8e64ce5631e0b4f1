"""Recorded events moved to the present (pipeline/ingest/retime.py): one offset of whole
seconds for all, each time in its own form, the gaps between events kept exactly."""

from __future__ import annotations

import copy
import time

from hypothesis import given
from hypothesis import strategies as st

from pipeline.alerts.falco_json import event_time_ns, parse_rfc3339_ns
from pipeline.cli.replay import moved_to_now
from pipeline.ingest.retime import offset_to_end_at, retimed, shifted, time_range

S = 1_000_000_000
NOW = 1_796_000_000 * S + 123_456_789  # 2026-11-30, within a second


def test_a_syscall_time_keeps_its_type():
    assert shifted(1_763_800_000_000_000_001, 5 * S) == 1_763_800_005_000_000_001
    assert shifted("1763800000000000001", 5 * S) == "1763800005000000001"


def test_an_rfc3339_time_keeps_its_fraction_digits_and_is_written_in_utc():
    assert shifted("2025-11-22T08:26:53.100000Z", 3600 * S) == "2025-11-22T09:26:53.100000Z"
    assert shifted("2025-11-22T08:26:53Z", 86_400 * S) == "2025-11-23T08:26:53Z"
    assert shifted("2025-11-22T08:26:53.123456789Z", S) == "2025-11-22T08:26:54.123456789Z"
    assert shifted("2025-11-22T10:26:53.5+02:00", 0) == "2025-11-22T08:26:53.5Z"


def test_what_is_not_a_time_is_left_as_it_is():
    for value in (None, "", "yesterday", "²", -5, 0, 1.5, [1], {"a": 1}):
        assert shifted(value, 10 * S) == value


def test_the_recording_ends_in_the_second_up_to_the_end_and_the_gaps_stay():
    events = [
        ({"evt.time": 1_763_800_006_000_000_500, "evt.type": "execve"}, "syscall"),
        ({"kind": "Event", "requestReceivedTimestamp": "2025-11-22T08:26:40.000000Z",
          "stageTimestamp": "2025-11-22T08:26:40.250000Z"}, "k8s_audit"),  # 1763800000 s: the earliest
        ({"eventName": "ConsoleLogin", "eventTime": "2025-11-22T08:27:00Z"}, "aws_cloudtrail"),
    ]
    before = copy.deepcopy(events)
    offset = offset_to_end_at(time_range(events), NOW)
    assert offset % S == 0
    moved = retimed(events, offset)
    assert events == before  # copies, not the given events
    first = parse_rfc3339_ns(moved[1]["requestReceivedTimestamp"])
    last = parse_rfc3339_ns(moved[2]["eventTime"])
    assert NOW - S < last <= NOW
    assert moved[0]["evt.time"] - first == 6 * S + 500
    assert parse_rfc3339_ns(moved[1]["stageTimestamp"]) - first == 250_000_000
    assert parse_rfc3339_ns(moved[2]["eventTime"]) - first == 20 * S
    assert moved[0]["evt.type"] == "execve" and moved[2]["eventName"] == "ConsoleLogin"


def test_nested_times_and_events_without_a_time_are_not_touched():
    audit = {"kind": "Event", "stageTimestamp": "2025-11-22T08:26:40.000000Z",
             "requestObject": {"metadata": {"creationTimestamp": "2025-11-22T08:26:40Z"}}}
    bare = {"evt.type": "open"}
    moved = retimed([(audit, "k8s_audit"), (bare, "syscall")], 3600 * S)
    assert moved[0]["requestObject"] == audit["requestObject"]
    assert moved[1] is bare


def test_events_without_any_time_are_returned_unchanged():
    events = [({"evt.type": "open"}, "syscall"), ({"kind": "Event"}, "k8s_audit")]
    assert time_range(events) is None
    assert retimed(events, 3600 * S) == [events[0][0], events[1][0]]


def test_moved_to_now_ends_the_recording_now_and_keeps_each_hint():
    events = [({"evt.time": 1_763_800_000_000_000_000, "evt.type": "execve", "container.id": "c1"}, None),
              ({"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com", "eventTime": "2025-11-22T08:26:41Z"},
               "aws_cloudtrail")]
    before = time.time_ns()
    moved = moved_to_now(events)
    after = time.time_ns()
    assert [hint for _, hint in moved] == [None, "aws_cloudtrail"]
    first, last = event_time_ns(moved[0][0], "syscall"), event_time_ns(moved[1][0], "aws_cloudtrail")
    assert last - first == S
    assert before - S < last <= after  # nothing in the future of a "last hour" view


def test_moved_to_now_begins_after_a_given_time_when_ending_now_would_not():
    events = [({"evt.time": 1_763_800_000_000_000_000, "container.id": "c1"}, None),
              ({"evt.time": 1_763_800_013_000_000_000, "container.id": "c1"}, None)]
    previous = time.time_ns() - 5 * S  # a run 5 s ago, its 13 s recording ending then
    moved = moved_to_now(events, after_ns=previous)
    assert previous < moved[0][0]["evt.time"] <= previous + S
    assert moved[1][0]["evt.time"] - moved[0][0]["evt.time"] == 13 * S
    assert moved_to_now([({"evt.type": "open", "container.id": "c1"}, None)]) == [({"evt.type": "open", "container.id": "c1"}, None)]


def test_time_range_spans_every_source():
    events = [({"evt.time": 5 * S}, "syscall"), ({"eventTime": "1970-01-01T00:00:09Z"}, "aws_cloudtrail"),
              ({"stageTimestamp": "1970-01-01T00:00:02.5Z"}, "k8s_audit")]
    assert time_range(events) == (2 * S + S // 2, 9 * S)


@given(st.lists(st.integers(min_value=1, max_value=4_000_000_000 * S), min_size=1, max_size=40),
       st.integers(min_value=1_000_000_000 * S, max_value=4_000_000_000 * S))
def test_the_gaps_between_any_syscall_times_are_kept(times, end):
    events = [({"evt.time": t}, "syscall") for t in times]
    new = [event["evt.time"] for event in retimed(events, offset_to_end_at(time_range(events), end))]
    assert [b - a for a, b in zip(times, times[1:])] == [b - a for a, b in zip(new, new[1:])]
    assert end - S < max(new) <= end


def test_an_offset_after_a_given_time_begins_the_events_after_it():
    found = (100 * S, 113 * S)  # 13 s of events
    assert offset_to_end_at(found, 200 * S) == 87 * S  # ending at 200 s
    assert offset_to_end_at(found, 200 * S, after_ns=195 * S) == 96 * S  # beginning at 196 s, after 195
    assert offset_to_end_at(found, 200 * S, after_ns=150 * S) == 87 * S  # ending now begins after it already
    assert offset_to_end_at(found, 200 * S + S // 2) == 87 * S  # whole seconds, never past the end
