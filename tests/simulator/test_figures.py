"""The truth's figures for the views (pure): receiver minutes, days, buckets and SDR lines,
each with the leeway of items near a boundary."""

from __future__ import annotations

from datetime import date

from simulator.figures import (
    INFERRED_INFO,
    add_repeated_rows,
    concurrency_per_minute,
    count_per_app_day,
    duration_distribution,
    minute_of,
    sdr_lines,
    usage_per_app_day,
)
from simulator.judge import Bounds, Clock
from simulator.truth import LegTruth, RunInfo, SessionTruth

WALL_START = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, a whole minute
MIDNIGHT = 1_800_057_600.0  # 2027-01-16 00:00:00 UTC


def clock(wall_start: float = WALL_START) -> Clock:
    """Speed 10, no delays: a moment may be 0.01 s late or 0.06 s early (simulated)."""
    return Clock(RunInfo(seed=1, speed=10, sim_start=0, wall_start=wall_start))


def leg(name: str, role: str, started: float, ended: float, **changes: object) -> LegTruth:
    truth = LegTruth(f"{name}-{role}-{started}", "node", "s", "app", name, role, 0, started - 1)
    truth.started, truth.ended, truth.last_delivered = started, ended, ended
    truth.end_status = "UNPUBLISHED" if role == "publisher" else "STOPPED"
    truth.media_provider = "WebRTC"
    for key, value in changes.items():
        setattr(truth, key, value)
    return truth


def test_a_leg_counts_in_every_receiver_minute_it_touches() -> None:
    # At speed 10 a receiver minute is 600 simulated seconds.
    legs = [
        leg("a", "publisher", 100, 700),  # minutes 0 and 1
        leg("a", "player", 50, 550),  # minute 0
        leg("a", "player", 599.99, 900),  # starts on the boundary: minute 1, maybe 0 too
    ]
    figures = concurrency_per_minute(legs, clock())
    first = minute_of(WALL_START)
    assert figures.at(first)["publisher"] == Bounds(1, 1, 1)
    assert figures.at(first)["player"] == Bounds(2, 1, 2)
    assert figures.at(first + 1) == {"publisher": Bounds(1, 1, 1), "player": Bounds(1, 1, 1)}
    assert figures.must == figures.may == range(first, first + 2)
    assert figures.at(first + 5)["player"] == Bounds()


def test_a_lost_end_counts_until_the_last_delivered_hook() -> None:
    lost = leg("a", "player", 100, 1300, lost_terminal=True, last_delivered=500)
    figures = concurrency_per_minute([lost], clock())
    assert figures.may == range(minute_of(WALL_START), minute_of(WALL_START) + 1)


def test_durations_are_bucketed_in_receiver_seconds() -> None:
    # 100 s is 10 receiver s; 600 s is 60 receiver s, on a bucket's edge; 5000 s is 500.
    buckets = duration_distribution([100, 600, 5000], clock())
    assert buckets == {
        "0-1 min": Bounds(1, 1, 2),
        "1-5 min": Bounds(1, 0, 1),
        "5-15 min": Bounds(1, 1, 1),
        "15-60 min": Bounds(),
        "1 h+": Bounds(),
    }


def test_sdr_lines_render_like_wcs_with_their_leeway() -> None:
    publisher = leg("a", "publisher", 105, 700)
    players = [
        leg("a", "player", 200, 300),  # a subscriber
        leg("a", "player", 700.05, 800, lost_terminal=True, last_delivered=750),  # maybe
        leg("a", "player", 800, 900),  # after the publisher ended
        leg("b", "player", 200, 300),  # another stream
    ]
    lines = sdr_lines([publisher, *players], clock())
    line = lines[publisher.media_session_id]
    assert line.starts == ("2027-01-15 08:00:10",)
    assert line.durations == ("00:00:59",)
    assert (line.disposition, line.info, line.type) == ("UNPUBLISHED", "", "PUBLISH")
    assert line.subscribers == Bounds(1, 1, 2)
    lost = lines[players[1].media_session_id]
    assert (lost.disposition, lost.info, lost.inferred) == ("TIMED_OUT", INFERRED_INFO, True)
    assert (lost.type, lost.subscribers, lost.ended) == ("SUBSCRIBE", Bounds(), 750)
    assert lost.durations == ("00:00:04", "00:00:05")  # 4.995 receiver s, give or take
    on_the_second = lines[players[0].media_session_id]  # 20 receiver s in, or a bit before
    assert on_the_second.starts == ("2027-01-15 08:00:20", "2027-01-15 08:00:19")
    failed = leg("c", "publisher", 10, 20)
    failed.started = None
    assert failed.media_session_id not in sdr_lines([failed], clock())


def test_a_leg_near_midnight_may_count_on_either_day() -> None:
    near = clock(wall_start=MIDNIGHT - 10)
    legs = [leg("a", "publisher", 0, 600), leg("a", "player", 100, 700)]  # 23:59:50, 00:00:00
    usage = usage_per_app_day(legs, near)
    before, after = usage["app", date(2027, 1, 15)], usage["app", date(2027, 1, 16)]
    assert (before.legs, before.settled, before.uncertain) == (2, 1, 10.0)
    assert before.minutes == {"publisher": 10.0, "player": 0.0}
    assert (after.legs, after.settled, after.minutes["player"]) == (1, 0, 10.0)
    reports = count_per_app_day([("app", 0.0), ("app", 100.0), ("app", 200.0)], near)
    assert reports == {
        ("app", date(2027, 1, 15)): Bounds(1, 1, 2),
        ("app", date(2027, 1, 16)): Bounds(2, 1, 2),
    }


def test_copies_outside_the_retry_window_widen_their_days_counts() -> None:
    near = clock(wall_start=MIDNIGHT - 10)  # simulated 100 s is midnight
    reports = count_per_app_day([("app", 0.0), ("app", 200.0)], near)
    session = SessionTruth("node", "s1", "app", connected=0.0, ended=300.0)
    session.repeated_rows = [
        ("bug_reports", 0.3, False, False),  # surely a report of its own, on the first day
        ("bug_reports", 200.3, False, True),  # maybe one, on the second
        ("bug_reports", 100.0, True, True),  # surely a retry: no row, at midnight or not
        ("client_log_pushes", 0.5, False, False),  # another table
    ]
    assert add_repeated_rows(reports, [session], "bug_reports", near) == (1, 2)
    assert reports == {
        ("app", date(2027, 1, 15)): Bounds(1, 2, 2),
        ("app", date(2027, 1, 16)): Bounds(1, 1, 2),
    }
