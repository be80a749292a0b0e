"""Compares the truth's figures (:mod:`simulator.figures`) with the analytics views.

Every view of docs/analytics.md is compared row by row: a count must lie in the range its
:class:`Bounds` allow, a time or duration within the clock's tolerance; a row the truth
requires and the view lacks is ``missing``, one the truth cannot explain is ``present``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from simulator.figures import (
    DURATION_BUCKETS,
    INFERRED_INFO,
    SdrLine,
    add_repeated_rows,
    bug_report_moments,
    concurrency_per_minute,
    count_per_app_day,
    duration_distribution,
    minute_of,
    sdr_lines,
    session_durations,
    talk_times,
    usage_per_app_day,
)
from simulator.judge import Bounds, Checker
from simulator.truth import LegTruth, Truth, call_outcome, count_by, stream_viewers

Row = Mapping[str, Any]
Key = TypeVar("Key", bound=Hashable)

VIEWS = (
    "concurrent_streams_per_minute",
    "stream_viewers",
    "usage_minutes_per_app_day",
    "session_duration_distribution",
    "call_duration_distribution",
    "call_outcomes",
    "stream_end_reasons",
    "bug_reports_per_day",
    "stream_detail_records",
)
"""Every view of ``0003_views``; :func:`check_views` compares each."""


def check_views(checker: Checker, truth: Truth, views: Mapping[str, Sequence[Row]]) -> None:
    """Every view of :data:`VIEWS` against the truth's figures."""
    check_concurrency(checker, truth.legs, views["concurrent_streams_per_minute"])
    check_viewers(checker, truth.legs, views["stream_viewers"])
    check_usage(checker, truth.legs, views["usage_minutes_per_app_day"])
    check_distribution(
        checker, "session_duration_distribution", "sessions",
        session_durations(truth.sessions), views["session_duration_distribution"],
    )  # fmt: skip
    check_distribution(
        checker, "call_duration_distribution", "calls",
        talk_times(truth.calls), views["call_duration_distribution"],
    )  # fmt: skip
    check_outcomes(checker, truth, views)
    expected = count_per_app_day(bug_report_moments(truth.sessions), checker.clock)
    extra = add_repeated_rows(expected, truth.sessions, "bug_reports", checker.clock)
    actual = {(r["app"], r["day"]): r["reports"] for r in views["bug_reports_per_day"]}
    check_counts(
        checker, "bug_reports_per_day", "reports", expected, actual, label=_app_day, extra=extra
    )
    check_sdr(checker, truth.legs, views["stream_detail_records"])


def check_counts(
    checker: Checker,
    table: str,
    column: str,
    expected: Mapping[Key, Bounds],
    actual: Mapping[Key, int],
    *,
    label: Callable[[Key], str],
    extra: tuple[int, int] = (0, 0),
) -> None:
    """Counts per key: each within its bounds (a key may be absent when its count may be 0),
    no key the truth lacks, and the same total, or up to ``extra`` (must, may) more."""
    for key, bounds in expected.items():
        if key in actual:
            checker.within(table, label(key), column, bounds, actual[key])
        elif bounds.low > 0:
            checker.missing(table, label(key))
    checker.unexpected(table, map(label, actual.keys() - expected.keys()))
    total = sum(bounds.nominal for bounds in expected.values())
    totals = Bounds(total, total + extra[0], total + extra[1])
    checker.within(table, "*", f"total {column}", totals, sum(actual.values()))


def _app_day(key: tuple[str, Any]) -> str:
    return f"{key[0]}/{key[1]}"


def check_concurrency(checker: Checker, legs: Sequence[LegTruth], rows: Sequence[Row]) -> None:
    """``concurrent_streams_per_minute``: every receiver minute from the first start to the
    last end, publishers and players each within their bounds."""
    table, clock = "concurrent_streams_per_minute", checker.clock
    expected = concurrency_per_minute(legs, clock)
    actual = {minute_of(r["minute"].timestamp()): r for r in rows}

    def label(minute: int) -> str:
        sim = (minute * 60 - clock.run.wall_start) * clock.run.speed
        return f"{datetime.fromtimestamp(minute * 60, UTC):%Y-%m-%d %H:%M} (sim {sim:.0f} s)"

    for minute in expected.must:
        if minute not in actual:
            checker.missing(table, label(minute))
    checker.unexpected(table, (label(m) for m in sorted(actual) if m not in expected.may))
    for minute in sorted(m for m in actual if m in expected.may):
        counts = expected.at(minute)
        for role, column in (("publisher", "publishers"), ("player", "players")):
            checker.within(table, label(minute), column, counts[role], actual[minute][column])


def check_viewers(checker: Checker, legs: Sequence[LegTruth], rows: Sequence[Row]) -> None:
    """``stream_viewers``: total player legs per name, and the peak within its range."""
    expected = stream_viewers(legs, checker.clock.spread)
    actual = {r["name"]: r for r in rows}
    for name, viewers in expected.items():
        row = actual.get(name)
        if row is None:
            checker.missing("stream_viewers", name)
            continue
        checker.equal("stream_viewers", name, "total_viewers", viewers.total, row["total_viewers"])
        peak = Bounds(viewers.peak, viewers.low, viewers.high)
        checker.within("stream_viewers", name, "peak_viewers", peak, row["peak_viewers"])
    checker.unexpected("stream_viewers", iter(actual.keys() - expected.keys()))


def check_usage(checker: Checker, legs: Sequence[LegTruth], rows: Sequence[Row]) -> None:
    """``usage_minutes_per_app_day``: minutes per app and day within the legs' tolerance.

    Each leg's duration may stray by the clock's spread, a leg near midnight may count on
    either day, and the view rounds to 0.01 receiver minutes.
    """
    table, clock = "usage_minutes_per_app_day", checker.clock
    speed = clock.run.speed
    expected = usage_per_app_day(legs, clock)
    actual = {(r["app"], r["day"]): r for r in rows}
    for key, usage in expected.items():
        row = actual.get(key)
        if row is None:
            if usage.settled:
                checker.missing(table, _app_day(key))
            continue
        allowed = usage.legs * clock.spread / 60 + usage.uncertain + 0.01 * speed
        for role, column in (("publisher", "published_minutes"), ("player", "played_minutes")):
            want, have = usage.minutes[role], float(row[column]) * speed
            if abs(want - have) > allowed:
                checker.equal(
                    table, _app_day(key), column, f"{want:.2f}±{allowed:.2f}", f"{have:.2f}"
                )
    checker.unexpected(table, map(_app_day, actual.keys() - expected.keys()))


def check_distribution(
    checker: Checker, table: str, column: str, durations: Sequence[float], rows: Sequence[Row]
) -> None:
    """A duration distribution: the buckets of docs/analytics.md, each count in its bounds."""
    buckets = [(r["bucket"], r["lower_s"], r["upper_s"]) for r in rows]
    checker.equal(table, "*", "buckets", sorted(DURATION_BUCKETS, key=lambda b: b[1]),
                  sorted(buckets, key=lambda b: b[1]))  # fmt: skip
    expected = duration_distribution(durations, checker.clock)
    actual = {r["bucket"]: r[column] for r in rows}
    check_counts(checker, table, column, expected, actual, label=str)


def check_outcomes(checker: Checker, truth: Truth, views: Mapping[str, Sequence[Row]]) -> None:
    """``call_outcomes`` and ``stream_end_reasons``: exact counts per outcome and reason (a
    lost terminal status shows as the projector's inferred ``TIMED_OUT``)."""
    outcomes = count_by(call_outcome(c) for c in truth.calls)
    actual = {r["outcome"]: r["calls"] for r in views["call_outcomes"]}
    checker.equal("call_outcomes", "*", "calls", outcomes, actual)
    reasons = count_by(
        (leg.role, "TIMED_OUT", "inferred")
        if leg.lost_terminal
        else (leg.role, leg.end_status, leg.end_info or "")
        for leg in truth.legs
    )
    seen = count_by(
        (
            r["role"],
            r["end_status"],
            "inferred" if r["end_status"] == "TIMED_OUT" else r["end_info"],
        )
        for r in views["stream_end_reasons"]
        for _ in range(r["streams"])
    )
    checker.equal("stream_end_reasons", "*", "streams", reasons, seen)


def check_sdr(checker: Checker, legs: Sequence[LegTruth], rows: Sequence[Row]) -> None:
    """``stream_detail_records``: each started leg's fields, its end, and its whole line."""
    table = "stream_detail_records"
    expected = sdr_lines(legs, checker.clock)
    actual = {r["media_session_id"]: r for r in rows}
    for key, line in expected.items():
        row = actual.get(key)
        if row is None:
            checker.missing(table, key)
            continue
        fields = sdr_fields(line, row)
        for column, value in fields.items():
            if column == "subscribers":
                checker.within(table, key, column, line.subscribers, row[column])
            else:
                checker.equal(table, key, column, value, row[column])
        checker.moment(table, key, "ended_at", line.ended, row["ended_at"])
        text = ";".join(str(value) for value in fields.values()) + ";"
        checker.equal(table, key, "line", text, row["line"])
    checker.unexpected(table, iter(actual.keys() - expected.keys()))


def sdr_fields(line: SdrLine, row: Row) -> dict[str, Any]:
    """The SDR columns in WCS's order, as the truth has them; where the truth allows several
    renderings (start, duration, inferred info, subscribers) the row's, if it is one of them."""

    def pick(column: str, allowed: bool, otherwise: Any) -> Any:
        return row[column] if allowed else otherwise

    inferred_ok = line.inferred and str(row["info"]).startswith(INFERRED_INFO)
    return {
        "start": pick("start", row["start"] in line.starts, line.starts[0]),
        "media_provider": line.media_provider,
        "name": line.name,
        "media_session_id": line.media_session_id,
        "duration": pick("duration", row["duration"] in line.durations, line.durations[0]),
        "disposition": line.disposition,
        "info": pick("info", inferred_ok, line.info),
        "type": line.type,
        "subscribers": pick(
            "subscribers", line.subscribers.admits(row["subscribers"]), line.subscribers.nominal
        ),
    }
