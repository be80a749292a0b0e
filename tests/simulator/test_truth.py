"""Ground truth (pure): aggregates, the file round trip, and how check judges times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulator.check import check_legs, compare
from simulator.check_views import VIEWS
from simulator.judge import Checker, Clock
from simulator.truth import (
    LegTruth,
    RunInfo,
    SessionTruth,
    Truth,
    peak_overlap,
    read_truth,
    stream_viewers,
    usage_minutes,
    write_truth,
)


def player(name: str, started: float, ended: float, **changes: object) -> LegTruth:
    leg = LegTruth(
        f"leg-{name}-{started}", "node", "session", "app", name, "player", 0, started - 1
    )
    leg.started, leg.ended, leg.end_status, leg.last_delivered = started, ended, "STOPPED", ended
    for key, value in changes.items():
        setattr(leg, key, value)
    return leg


@pytest.mark.parametrize(
    ("intervals", "closed", "peak"),
    [
        ([], False, 0),
        ([(0, 10), (5, 15), (12, 20)], False, 2),
        ([(0, 10), (10, 20)], False, 1),
        ([(0, 10), (10, 20)], True, 2),
        ([(0, 10), (1, 2), (3, 4), (3.5, 9)], False, 3),
    ],
)
def test_peak_overlap(intervals: list[tuple[float, float]], closed: bool, peak: int) -> None:
    assert peak_overlap(intervals, closed) == peak


def test_stream_viewers_bounds_the_peak_by_the_tolerance() -> None:
    legs = [player("a", 0, 10), player("a", 10.5, 20), player("a", 30, 40), player("b", 0, 5)]
    exact = stream_viewers(legs, 0.0)
    assert exact["a"].peak == exact["a"].low == exact["a"].high == 1
    assert exact["a"].total == 3
    loose = stream_viewers(legs, 1.0)
    assert (loose["a"].low, loose["a"].peak, loose["a"].high) == (1, 1, 2)


def test_a_lost_end_counts_until_the_last_delivered_hook() -> None:
    legs = [player("a", 0, 60, lost_terminal=True, last_delivered=50), player("a", 0, 30)]
    usage = usage_minutes(legs)["app"]
    assert usage.played_minutes == pytest.approx((50 + 30) / 60)
    assert usage.published_minutes == 0


def test_the_truth_file_round_trips(tmp_path: Path) -> None:
    truth = Truth(RunInfo(seed=1, speed=10, sim_start=1.0), legs=[player("a", 0, 10)])
    write_truth(truth, tmp_path / "t.jsonl")
    assert read_truth(tmp_path / "t.jsonl") == truth


def at(run: RunInfo, sim: float) -> datetime:
    return datetime.fromtimestamp(run.wall_start + sim / run.speed, tz=UTC)


def test_a_projected_time_may_only_be_late_within_the_tolerance() -> None:
    run = RunInfo(seed=1, speed=10, sim_start=0, wall_start=1_800_000_000, max_delay_s=0.2)
    clock = Clock(run)
    assert clock.late == pytest.approx(2.01)
    assert clock.moment_ok(100.0, at(run, 100.0))
    assert clock.moment_ok(100.0, at(run, 101.9))
    assert not clock.moment_ok(100.0, at(run, 102.5))
    assert not clock.moment_ok(100.0, at(run, 99.0))
    assert not clock.moment_ok(None, at(run, 100.0))
    assert clock.duration_ok(50.0, 5.1)
    assert not clock.duration_ok(50.0, 5.5)
    # the time held over three holds: each hold's two ends may stray
    assert clock.duration_ok(50.0, 5.5, intervals=3)
    assert not clock.duration_ok(50.0, 6.0, intervals=3)


def test_check_names_each_wrong_column() -> None:
    run = RunInfo(seed=1, speed=10, sim_start=0, wall_start=1_800_000_000)
    leg = player("a", 5, 65)
    row = {
        "node_id": "node", "session_id": "session", "app": "app", "name": "a",
        "role": "player", "snapshots_requested": 0, "created_at": datetime.fromtimestamp(0, UTC),
        "started_at": at(run, 5), "end_status": "STOPPED", "end_info": None,
        "ended_at": at(run, 65), "duration_s": 6.0, "end_inferred": False,
        "media_provider": "", "keepalive_count": 0, "last_keepalive_at": None,
    }  # fmt: skip
    checker = Checker(Clock(run))
    check_legs(checker, [leg], {leg.media_session_id: row})
    assert checker.mismatches == []
    check_legs(checker, [leg], {leg.media_session_id: row | {"ended_at": at(run, 80)}})
    assert [(m.table, m.column) for m in checker.mismatches] == [("streams", "ended_at")]
    checker = Checker(Clock(run))
    check_legs(checker, [leg], {})
    assert [(m.key, m.column, m.actual) for m in checker.mismatches] == [
        (leg.media_session_id, "row", "missing")
    ]


def test_sessions_with_refused_hooks_are_left_out() -> None:
    session = SessionTruth("node", "s1", "app", connected=1.0, ended=9.0)
    run = RunInfo(seed=1, speed=10, sim_start=0, hooks=3, non_200=1)
    db: dict[str, Any] = {
        "events": {"rows": 2, "retries": 0},
        "sessions": {}, "streams": {}, "calls": {}, "details": {},
        "views": {key: [] for key in VIEWS},
    }  # fmt: skip
    mismatches = compare(Truth(run, sessions=[session]), db)
    assert [m.column for m in mismatches if m.table == "sessions"] == ["row"]
    run.undelivered_sessions = ["s1"]
    assert compare(Truth(run, sessions=[session]), db) == []
