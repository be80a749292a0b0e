"""What the simulator expects of the projector's retry marks, given how its answers came."""

from __future__ import annotations

import pytest

from simulator.check import dtmf_admits
from simulator.run import dtmf_bounds, keepalive_bounds, retry_bounds
from simulator.schedule import Send
from simulator.truth import CallTruth, LegTruth

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
