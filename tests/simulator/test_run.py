"""What the simulator expects of the projector's retry marks, given how its answers came."""

from __future__ import annotations

import pytest

from simulator.check import check_session_details, dtmf_admits, files_admit
from simulator.judge import Checker, Clock
from simulator.run import dtmf_bounds, keepalive_bounds, repeated_row_bounds, retry_bounds
from simulator.schedule import Send
from simulator.truth import CallTruth, LegTruth, RunInfo, SessionTruth

WINDOW = 0.2


def test_repeats_received_surely_within_the_window_must_be_marked_and_strays_may() -> None:
    gaps = [
        (1, 0.01, 0.05),  # surely within: must be marked
        (2, -0.15, 0.1),  # the copy may even come first: still within, must be marked
        (3, 0.1, 0.4),  # may or may not be within
        (4, 0.3, 0.6),  # surely outside: must not be marked
    ]
    assert retry_bounds(gaps, WINDOW) == (2, 3)


def test_a_legs_keepalive_count_allows_for_strayed_receipts() -> None:
    body = b'{"mediaSessionId": "leg-1"}'
    sends = [
        Send(0.0, "StreamKeepAliveEvent", body),
        Send(10.0, "StreamKeepAliveEvent", body),
        Send(10.5, "StreamKeepAliveEvent", body, duplicate=True),
        Send(20.0, "StreamKeepAliveEvent", body),
    ]
    leg = LegTruth("leg-1", "node", "session", "app", "s", "publisher", 0, 0.0, keepalives=3)
    gaps = [
        (1, 0.1, 0.5),  # the next keep-alive may have been stamped within the window
        (2, 0.0, 0.1),  # the duplicate surely was: marked
        (3, 0.9, 1.1),  # surely outside
    ]
    keepalive_bounds([leg], sends, gaps, WINDOW)
    # four delivered; the duplicate is surely marked, the second keep-alive may be
    assert (leg.keepalives_low, leg.keepalives_high) == (2, 3)


def test_a_duplicated_dtmf_that_arrived_outside_the_window_may_count_twice() -> None:
    star, six = b'{"callId": "c1", "dtmf": "*"}', b'{"callId": "c1", "dtmf": "6"}'
    sends = [
        Send(0.0, "sendDtmf", six),
        Send(1.0, "sendDtmf", star),
        Send(1.1, "sendDtmf", star, duplicate=True),
        Send(2.0, "sendDtmf", six),
        Send(2.1, "sendDtmf", six, duplicate=True),
    ]
    call = CallTruth("c1", "node", "session", "app", "out", "a", "b", 0.0, dtmf="6*6")
    gaps = [
        (2, 0.1, 0.4),  # the star's copy may have come outside the window
        (3, 1.9, 2.1),  # the second six repeats the first's body, surely outside
        (4, 0.0, 0.1),  # the six's copy surely within: a retry
    ]
    dtmf_bounds([call], sends, gaps, WINDOW)
    assert (call.dtmf_repeats_low, call.dtmf_repeats_high) == (0, 1)


@pytest.mark.parametrize(
    ("actual", "low", "high", "admitted"),
    [
        ("6*", 0, 0, True),
        ("6**", 0, 0, False),  # no repeat expected
        ("6**", 0, 1, True),
        ("6*", 1, 1, False),  # a repeat was certain
        ("*6", 0, 0, False),  # not the digits in order
        ("66*", 0, 1, True),
        (None, 0, 1, False),
    ],
)
def test_dtmf_sent_admits_the_digits_with_the_repeats_the_run_allows(
    actual: str | None, low: int, high: int, admitted: bool
) -> None:
    assert dtmf_admits("6*", actual, low, high) is admitted


def test_duplicated_hooks_that_add_a_row_each_may_add_one_when_outside_the_window() -> None:
    report = b'{"sessionId": "s1", "type": "no_media", "text": "black screen"}'
    logs = b'{"sessionId": "s1", "logs": "12:00 ICE connected"}'
    sends = [
        Send(1.0, "submitBugReport", report),
        Send(1.3, "submitBugReport", report, duplicate=True),
        Send(2.0, "pushLogs", logs),
        Send(2.1, "pushLogs", logs, duplicate=True),
        Send(3.0, "sendDtmf", b'{"sessionId": "s1", "callId": "c1", "dtmf": "1"}'),
        Send(3.1, "sendDtmf", b'{"sessionId": "s1", "callId": "c1", "dtmf": "1"}', True),
    ]
    session = SessionTruth("node", "s1", "app", connected=0.0, ended=9.0)
    gaps = [
        (1, 0.25, 0.4),  # the report's copy surely came outside the window: its own row
        (3, 0.1, 0.3),  # the log push's copy may have
        (5, 0.3, 0.5),  # not a hook that adds a row of its own
    ]
    repeated_row_bounds([session], sends, gaps, WINDOW)
    assert session.repeated_rows == [
        ("bug_reports", 1.3, False, False),
        ("client_log_pushes", 2.1, False, True),
    ]
    assert session.extra_rows("bug_reports") == (1, 1)
    assert session.extra_rows("client_log_pushes") == (0, 1)
    assert session.extra_rows("session_debug") == (0, 0)


@pytest.mark.parametrize(
    ("actual", "low", "high", "admitted"),
    [
        (["a.txt"], 0, 0, True),
        (["a.txt", None], 0, 0, False),  # no copy could have come outside the window
        (["a.txt", None], 0, 1, True),
        (["a.txt"], 1, 1, False),  # a copy surely came outside: two reports
        (["b.txt", None], 0, 1, False),  # the file is not the one reported
        (["a.txt", "a.txt"], 0, 1, True),  # the status was sent twice too: both name the file
        (["a.txt", "b.txt"], 0, 1, False),  # not a file of this session's reports
        ([None], 0, 1, False),  # the reported file is missing
    ],
)
def test_bug_report_files_admit_the_unpaired_copies_the_run_allows(
    actual: list[str | None], low: int, high: int, admitted: bool
) -> None:
    assert files_admit(["a.txt"], actual, low, high) is admitted


def test_session_details_count_the_rows_of_copies_outside_the_window() -> None:
    session = SessionTruth("node", "s1", "app", connected=0.0, ended=9.0, log_pushes=2)
    session.bug_reports = ["a.txt"]
    session.repeated_rows = [
        ("bug_reports", 1.3, False, False),
        ("client_log_pushes", 2.1, False, True),
    ]
    checker = Checker(Clock(RunInfo(seed=1, speed=10, sim_start=0)))
    found = {"s1": {"bugs": ["a.txt", None], "logs": 3}}
    check_session_details(checker, [session], found)
    assert checker.mismatches == []
    check_session_details(checker, [session], {"s1": {"bugs": ["a.txt"], "logs": 4}})
    assert [str(m) for m in checker.mismatches] == [
        "bug_reports s1 filenames: expected ['a.txt'] (+1..1 without a file), got ['a.txt']",
        "client_log_pushes s1 count: expected 2 (in 2..3), got 4",
    ]
