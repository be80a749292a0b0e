"""What to simulate: the size of the day, its speed and WCS's delivery quirks (pure values)."""

from __future__ import annotations

from dataclasses import dataclass, field

KEEPALIVE_S = 10.0
"""WCS's ``streaming_sessions_keep_alive_interval`` in simulated seconds."""

RETRY_WINDOW_S = 3.0
"""The retry window to give the projector, in simulated seconds. Its default is 5 s; 3 s still
covers every duplicate (sent at most 0.5 s after the original) and leaves a leg's keep-alives,
10 s apart, 7 s of room for uneven arrival delays, which a faster-than-real day multiplies."""

MIN_REPEAT_S = 8.0
"""Identical bodies of one hook are at least this far apart in simulated time, so only the
intended duplicates fall inside the retry window (reorder jitter included)."""


@dataclass(frozen=True, slots=True)
class Quirks:
    """WCS's delivery quirks; all off by default.

    ``duplicates``: share of hooks sent twice, the copy ``duplicate_delay_s`` later (a WCS retry
    after a lost answer). ``reorder``: share of event hooks (``…StatusEvent``, keep-alives) held
    back by up to ``reorder_window_s``, so they are overtaken by their neighbours (WCS sends
    them from an async thread pool).
    ``lost_terminals``: share of eligible stream legs whose terminal ``StreamStatusEvent`` never
    arrives. ``skew_s``: clock offset of node 0 (moves its ``createDate``). ``burst``: players
    of one popular stream that all join within one simulated second.
    """

    duplicates: float = 0.0
    duplicate_delay_s: tuple[float, float] = (0.05, 0.5)
    reorder: float = 0.0
    reorder_window_s: float = 0.5
    lost_terminals: float = 0.0
    skew_s: float = 0.0
    burst: int = 0

    @property
    def slack_s(self) -> float:
        """The most a quirk can move a hook's arrival from its moment, in simulated seconds."""
        moved = [0.0]
        if self.duplicates:
            moved.append(self.duplicate_delay_s[1])
        if self.reorder:
            moved.append(self.reorder_window_s)
        return max(moved)


ALL_QUIRKS = Quirks(duplicates=0.02, reorder=0.05, lost_terminals=0.1, skew_s=90.0, burst=1000)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated day: ``nodes`` WCS nodes serving about ``sessions`` concurrent sessions
    for ``duration_s`` simulated seconds from ``start`` (Unix seconds), played ``speed`` times
    faster than real time. The same scenario always yields the same hooks."""

    seed: int = 1
    nodes: int = 2
    sessions: int = 50
    duration_s: float = 2 * 3600.0
    speed: float = 100.0
    start: float = 1_780_000_000.0
    keepalive_s: float = KEEPALIVE_S
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        assert self.nodes >= 1, "at least one node"
        assert self.speed > 0, "speed must be positive"
        assert self.duration_s >= 120, "a day lasts at least two simulated minutes"
