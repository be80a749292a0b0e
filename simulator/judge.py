"""How check judges projected figures against the truth: the clock mapping and tolerances.

Times in the database are the receiver's clock; :class:`Clock` maps them to simulated time
(``sim = (received - wall_start) * speed``) and back (``wall = wall_start + sim / speed``).
A projected time may be later than the truth by up to ``RunInfo.tolerance_s`` (HTTP, queueing
and quirk delays, in simulated seconds) and earlier only by clock granularity; a duration may
differ by both either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from simulator.truth import RunInfo


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference between truth and projection."""

    table: str
    key: str
    column: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.table} {self.key} {self.column}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True, slots=True)
class Clock:
    """Maps receiver times to simulated seconds and back, and judges them against the truth."""

    run: RunInfo

    @property
    def late(self) -> float:
        return self.run.tolerance_s

    @property
    def early(self) -> float:
        return 0.005 * self.run.speed + 0.01

    @property
    def spread(self) -> float:
        """How far a projected duration may stray either way, in simulated seconds."""
        return self.late + self.early

    def sim(self, at: datetime | None) -> float | None:
        if at is None:
            return None
        return (at.timestamp() - self.run.wall_start) * self.run.speed

    def wall(self, sim: float) -> float:
        """The receiver's Unix time of simulated moment ``sim``, had it arrived on time."""
        return self.run.wall_start + sim / self.run.speed

    def wall_range(self, sim: float) -> tuple[float, float]:
        """Earliest and latest receiver Unix time a hook of moment ``sim`` may be stamped."""
        return self.wall(sim - self.early), self.wall(sim + self.late)

    def seconds_range(self, duration: float) -> tuple[float, float]:
        """Least and most receiver seconds a projection may show for a simulated duration."""
        speed = self.run.speed
        return max(duration - self.spread, 0.0) / speed, (duration + self.spread) / speed

    def moment_ok(self, expected: float | None, actual: datetime | None) -> bool:
        """A projected moment matches when it is at most ``late`` after the truth."""
        got = self.sim(actual)
        if expected is None or got is None:
            return expected is None and got is None
        return -self.early <= got - expected <= self.late

    def duration_ok(
        self, expected: float | None, actual: Decimal | float | None, intervals: int = 1
    ) -> bool:
        """A projected duration (receiver seconds), the sum of ``intervals`` spans, matches
        within the tolerance either way for each span."""
        if expected is None or actual is None:
            return expected is None and actual is None
        return abs(float(actual) * self.run.speed - expected) <= self.spread * intervals


class Checker:
    """Collects the mismatches of one comparison."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mismatches: list[Mismatch] = []

    def equal(self, table: str, key: str, column: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            self.mismatches.append(Mismatch(table, key, column, expected, actual))

    def within(self, table: str, key: str, column: str, expected: Bounds, actual: Any) -> None:
        """``actual`` must lie in ``expected``'s range."""
        if not expected.admits(actual):
            self.mismatches.append(Mismatch(table, key, column, expected, actual))

    def moment(
        self, table: str, key: str, column: str, expected: float | None, actual: datetime | None
    ) -> None:
        if not self.clock.moment_ok(expected, actual):
            want = None if expected is None else f"{expected:.3f}+{self.clock.late:.2f}s"
            self.mismatches.append(Mismatch(table, key, column, want, _sim(self.clock, actual)))

    def duration(
        self,
        table: str,
        key: str,
        column: str,
        expected: float | None,
        actual: Any,
        *,
        intervals: int = 1,
    ) -> None:
        if not self.clock.duration_ok(expected, actual, intervals):
            spread = self.clock.spread * intervals
            want = None if expected is None else f"{expected:.3f}±{spread:.2f}s"
            got = None if actual is None else f"{float(actual) * self.clock.run.speed:.3f}s"
            self.mismatches.append(Mismatch(table, key, column, want, got))

    def missing(self, table: str, key: str) -> None:
        self.mismatches.append(Mismatch(table, key, "row", "present", "missing"))

    def unexpected(self, table: str, keys: Iterator[str]) -> None:
        for key in keys:
            self.mismatches.append(Mismatch(table, key, "row", "absent", "present"))


@dataclass(slots=True)
class Bounds:
    """A count as the truth has it (``nominal``: every hook on time) and the range a projection
    may show (``low``..``high``) when its moments stray within the clock's tolerance."""

    nominal: int = 0
    low: int = 0
    high: int = 0

    def add(self, nominal: bool, certain: bool) -> None:
        """Counts one item that may count here (``nominal``: it does when on time;
        ``certain``: it does however its moments stray)."""
        self.nominal += nominal
        self.low += certain
        self.high += 1

    @classmethod
    def count(cls, nominal: int, low: int | None, high: int | None) -> Bounds:
        """``nominal`` exactly, unless the run recorded the range it may stray to."""
        return cls(nominal, nominal if low is None else low, nominal if high is None else high)

    def admits(self, value: Any) -> bool:
        return value is not None and self.low <= value <= self.high

    def __str__(self) -> str:
        if self.low == self.high:
            return str(self.nominal)
        return f"{self.nominal} (in {self.low}..{self.high})"


def _sim(clock: Clock, at: datetime | None) -> str | None:
    value = clock.sim(at)
    return None if value is None else f"{value:.3f}"
