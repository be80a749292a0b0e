"""View comparisons (pure): counts within their bounds, SDR fields and lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simulator.check_views import check_counts, check_sdr
from simulator.judge import Bounds, Checker, Clock
from simulator.truth import LegTruth, RunInfo

RUN = RunInfo(seed=1, speed=10, sim_start=0, wall_start=1_800_000_000.0)


def test_a_count_may_be_absent_only_when_it_may_be_zero() -> None:
    checker = Checker(Clock(RUN))
    expected = {"edge": Bounds(1, 0, 1), "sure": Bounds(2, 2, 2), "wide": Bounds(3, 2, 4)}
    check_counts(checker, "t", "n", expected, {"wide": 5, "odd": 1}, label=str)
    assert [str(m) for m in checker.mismatches] == [
        "t sure row: expected present, got missing",
        "t wide n: expected 3 (in 2..4), got 5",
        "t odd row: expected absent, got present",
    ]
    check_counts(checker, "t", "n", expected, {"sure": 2, "wide": 3}, label=str)
    assert str(checker.mismatches[-1]) == "t * total n: expected 6, got 5"
    mismatches = len(checker.mismatches)
    check_counts(
        checker, "t", "n", expected, {"sure": 2, "wide": 5}, label=str, extra=(0, 1)
    )  # a copy of a hook may have arrived outside the retry window: one row more
    assert len(checker.mismatches) == mismatches + 1  # "wide" 5 is beyond its own bounds
    assert "total" not in str(checker.mismatches[-1])
    check_counts(checker, "t", "n", expected, {"sure": 2, "wide": 6}, label=str, extra=(0, 1))
    assert str(checker.mismatches[-1]) == "t * total n: expected 6 (in 6..7), got 8"


def test_an_sdr_line_must_match_field_by_field_and_whole() -> None:
    leg = LegTruth("L1", "node", "s", "app", "room", "publisher", 0, requested=104)
    leg.started, leg.ended, leg.last_delivered = 105.0, 700.0, 700.0
    leg.end_status, leg.media_provider = "UNPUBLISHED", "WebRTC"
    row: dict[str, Any] = {
        "media_session_id": "L1", "start": "2027-01-15 08:00:10", "media_provider": "WebRTC",
        "name": "room", "duration": "00:00:59", "disposition": "UNPUBLISHED", "info": "",
        "type": "PUBLISH", "subscribers": 0,
        "ended_at": datetime.fromtimestamp(RUN.wall_start + 70, UTC),
        "line": "2027-01-15 08:00:10;WebRTC;room;L1;00:00:59;UNPUBLISHED;;PUBLISH;0;",
    }  # fmt: skip
    checker = Checker(Clock(RUN))
    check_sdr(checker, [leg], [row])
    assert checker.mismatches == []
    check_sdr(checker, [leg], [row | {"disposition": "FAILED", "line": row["line"][:-1]}])
    assert [m.column for m in checker.mismatches] == ["disposition", "line"]
