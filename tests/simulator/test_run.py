"""What the simulator expects of the projector's retry marks, given how its answers came."""

from __future__ import annotations

from simulator.run import keepalive_bounds, retry_bounds
from simulator.schedule import Send
from simulator.truth import LegTruth

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
