"""What the simulator expects of the projector's retry marks, given how its answers came."""

from __future__ import annotations

from simulator.run import retry_bounds


def test_pairs_received_surely_within_the_window_must_be_marked_and_strays_may() -> None:
    window = 0.2
    gaps = [
        (0.01, 0.05),  # surely within: must be marked
        (-0.15, 0.1),  # the copy may even come first: still within, must be marked
        (0.1, 0.4),  # may or may not be within
        (0.3, 0.6),  # surely outside: must not be marked
    ]
    assert retry_bounds(gaps, window) == (2, 3)
