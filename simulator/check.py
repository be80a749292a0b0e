"""Compares a simulated day's ground truth with the read models and views in PostgreSQL.

Times in the database are the receiver's clock; :class:`Clock` maps them to simulated time
(``sim = (received - wall_start) * speed``). A projected time may be later than the truth by
up to ``RunInfo.tolerance_s`` (HTTP, queueing and quirk delays, in simulated seconds) and
earlier only by clock granularity; a duration may differ by the tolerance either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, text

from simulator.truth import (
    CallTruth,
    LegTruth,
    RunInfo,
    SessionTruth,
    Truth,
    call_outcome,
    count_by,
    stream_viewers,
    usage_minutes,
)

Row = Mapping[str, Any]


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
    """Maps receiver times to simulated seconds and judges them against the truth."""

    run: RunInfo

    @property
    def late(self) -> float:
        return self.run.tolerance_s

    @property
    def early(self) -> float:
        return 0.005 * self.run.speed + 0.01

    def sim(self, at: datetime | None) -> float | None:
        if at is None:
            return None
        return (at.timestamp() - self.run.wall_start) * self.run.speed

    def moment_ok(self, expected: float | None, actual: datetime | None) -> bool:
        """A projected moment matches when it is at most ``late`` after the truth."""
        got = self.sim(actual)
        if expected is None or got is None:
            return expected is None and got is None
        return -self.early <= got - expected <= self.late

    def duration_ok(self, expected: float | None, actual: Decimal | float | None) -> bool:
        """A projected duration (receiver seconds) matches within the tolerance either way."""
        if expected is None or actual is None:
            return expected is None and actual is None
        return abs(float(actual) * self.run.speed - expected) <= self.late + self.early


class Checker:
    """Collects the mismatches of one comparison."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mismatches: list[Mismatch] = []

    def equal(self, table: str, key: str, column: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            self.mismatches.append(Mismatch(table, key, column, expected, actual))

    def moment(
        self, table: str, key: str, column: str, expected: float | None, actual: datetime | None
    ) -> None:
        if not self.clock.moment_ok(expected, actual):
            want = None if expected is None else f"{expected:.3f}+{self.clock.late:.2f}s"
            self.mismatches.append(Mismatch(table, key, column, want, _sim(self.clock, actual)))

    def duration(
        self, table: str, key: str, column: str, expected: float | None, actual: Any
    ) -> None:
        if not self.clock.duration_ok(expected, actual):
            want = None if expected is None else f"{expected:.3f}±{self.clock.late:.2f}s"
            got = None if actual is None else f"{float(actual) * self.clock.run.speed:.3f}s"
            self.mismatches.append(Mismatch(table, key, column, want, got))

    def missing(self, table: str, key: str) -> None:
        self.mismatches.append(Mismatch(table, key, "row", "present", "missing"))

    def unexpected(self, table: str, keys: Iterator[str]) -> None:
        for key in keys:
            self.mismatches.append(Mismatch(table, key, "row", "absent", "present"))


def _sim(clock: Clock, at: datetime | None) -> str | None:
    value = clock.sim(at)
    return None if value is None else f"{value:.3f}"


def check_sessions(
    checker: Checker, truths: Sequence[SessionTruth], rows: Mapping[str, Row]
) -> None:
    """Each session: app, DISCONNECTED at its moment, duration, stream and call counts."""
    for truth in truths:
        key, row = truth.session_id, rows.get(truth.session_id)
        if row is None:
            checker.missing("sessions", key)
            continue
        checker.equal("sessions", key, "node_id", truth.node_id, row["node_id"])
        checker.equal("sessions", key, "app", truth.app, row["app"])
        checker.equal("sessions", key, "status", truth.status, row["status"])
        checker.moment("sessions", key, "connected_at", truth.connected, row["connected_at"])
        checker.moment("sessions", key, "ended_at", truth.ended, row["ended_at"])
        lasted = None if truth.connected is None else truth.ended - truth.connected
        checker.duration("sessions", key, "duration_s", lasted, row["duration_s"])
        checker.equal("sessions", key, "streams_count", truth.streams, row["streams_count"])
        checker.equal("sessions", key, "calls_count", truth.calls, row["calls_count"])
    checker.unexpected("sessions", iter(rows.keys() - {t.session_id for t in truths}))


def check_legs(checker: Checker, truths: Sequence[LegTruth], rows: Mapping[str, Row]) -> None:
    """Each leg: identity, ``createDate``, start, end (inferred when its end was lost)."""
    for truth in truths:
        key, row = truth.media_session_id, rows.get(truth.media_session_id)
        if row is None:
            checker.missing("streams", key)
            continue
        for column, value in (
            ("node_id", truth.node_id),
            ("session_id", truth.session_id),
            ("app", truth.app),
            ("name", truth.name),
            ("role", truth.role),
            ("snapshots_requested", truth.snapshots),
        ):
            checker.equal("streams", key, column, value, row[column])
        created = row["created_at"]
        created_ms = None if created is None else round(created.timestamp() * 1000)
        checker.equal("streams", key, "created_at (ms)", truth.created_ms, created_ms)
        checker.moment("streams", key, "started_at", truth.started, row["started_at"])
        if truth.lost_terminal:
            checker.equal("streams", key, "end_status", "TIMED_OUT", row["end_status"])
            checker.equal("streams", key, "end_inferred", True, row["end_inferred"])
            checker.moment("streams", key, "ended_at", truth.last_delivered, row["ended_at"])
            continue
        checker.equal("streams", key, "end_status", truth.end_status, row["end_status"])
        checker.equal("streams", key, "end_info", truth.end_info, row["end_info"])
        checker.moment("streams", key, "ended_at", truth.ended, row["ended_at"])
        duration = None if truth.started is None else truth.ended - truth.started
        checker.duration("streams", key, "duration_s", duration, row["duration_s"])
    checker.unexpected("streams", iter(rows.keys() - {t.media_session_id for t in truths}))


def check_calls(checker: Checker, truths: Sequence[CallTruth], rows: Mapping[str, Row]) -> None:
    """Each call: parties, outcome, ring-to-end moments, talk time, holds, transfer, DTMF."""
    for truth in truths:
        key, row = truth.call_id, rows.get(truth.call_id)
        if row is None:
            checker.missing("calls", key)
            continue
        for column, value in (
            ("session_id", truth.session_id),
            ("direction", truth.direction),
            ("caller", truth.caller),
            ("callee", truth.callee),
            ("status", truth.status),
            ("info", truth.info),
            ("hold_count", truth.hold_count),
            ("transfer_status", truth.transfer_status),
            ("dtmf_sent", truth.dtmf),
        ):
            checker.equal("calls", key, column, value, row[column])
        checker.moment("calls", key, "created_at", truth.created, row["created_at"])
        checker.moment("calls", key, "established_at", truth.established, row["established_at"])
        checker.moment("calls", key, "ended_at", truth.ended, row["ended_at"])
        talk = None if truth.established is None else truth.ended - truth.established
        checker.duration("calls", key, "talk_duration_s", talk, row["talk_duration_s"])
        held = truth.held_s if truth.hold_count else 0.0
        if not checker.clock.duration_ok(held, row["held_s"]) and truth.hold_count:
            checker.duration("calls", key, "held_s", held, row["held_s"])
    checker.unexpected("calls", iter(rows.keys() - {t.call_id for t in truths}))


def check_session_details(
    checker: Checker, truths: Sequence[SessionTruth], details: Mapping[str, Mapping[str, Any]]
) -> None:
    """Bug reports (with their files), data messages, log pushes, debug events per session."""
    for truth in truths:
        key, found = truth.session_id, details.get(truth.session_id, {})
        checker.equal(
            "bug_reports", key, "filenames", sorted(truth.bug_reports), found.get("bugs", [])
        )
        checker.equal("data_messages", key, "statuses", truth.data, found.get("data", {}))
        checker.equal("client_log_pushes", key, "count", truth.log_pushes, found.get("logs", 0))
        checker.equal("session_debug", key, "count", truth.debug_events, found.get("debug", 0))


def check_views(checker: Checker, truth: Truth, views: Mapping[str, Sequence[Row]]) -> None:
    """``stream_viewers``, ``usage_minutes_per_app_day``, ``call_outcomes``,
    ``stream_end_reasons`` and ``bug_reports_per_day`` against the truth's aggregates."""
    tolerance = checker.clock.late + checker.clock.early
    expected_viewers = stream_viewers(truth.legs, tolerance)
    actual_viewers = {r["name"]: r for r in views["stream_viewers"]}
    for name, viewers in expected_viewers.items():
        row = actual_viewers.get(name)
        if row is None:
            checker.missing("stream_viewers", name)
            continue
        checker.equal("stream_viewers", name, "total_viewers", viewers.total, row["total_viewers"])
        if not viewers.low <= row["peak_viewers"] <= viewers.high:
            checker.equal(
                "stream_viewers", name, "peak_viewers",
                f"{viewers.peak} (in {viewers.low}..{viewers.high})", row["peak_viewers"],
            )  # fmt: skip
    checker.unexpected("stream_viewers", iter(actual_viewers.keys() - expected_viewers.keys()))
    check_usage(checker, truth, views["usage_minutes_per_app_day"])
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
    reports = count_by(s.app for s in truth.sessions for _ in s.bug_reports)
    per_app: dict[str, int] = defaultdict(int)
    for r in views["bug_reports_per_day"]:
        per_app[r["app"]] += r["reports"]
    checker.equal("bug_reports_per_day", "*", "reports per app", reports, dict(per_app))


def check_usage(checker: Checker, truth: Truth, rows: Sequence[Row]) -> None:
    """Published and played minutes per app (summed over days) within the legs' tolerance."""
    speed, per_leg = truth.run.speed, 2 * (checker.clock.late + checker.clock.early) / 60
    actual: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        actual[r["app"]][0] += float(r["published_minutes"]) * speed
        actual[r["app"]][1] += float(r["played_minutes"]) * speed
    for app, usage in usage_minutes(truth.legs).items():
        allowed = usage.legs * per_leg + 0.01 * speed
        got = actual.get(app, [0.0, 0.0])
        for column, want, have in (
            ("published_minutes", usage.published_minutes, got[0]),
            ("played_minutes", usage.played_minutes, got[1]),
        ):
            if abs(want - have) > allowed:
                checker.equal(
                    "usage_minutes_per_app_day", app, column, f"{want:.2f}±{allowed:.2f}",
                    f"{have:.2f}",
                )  # fmt: skip


def check_events(checker: Checker, run: RunInfo, counts: Row) -> None:
    """Every accepted hook is in ``hook_events``; exactly the duplicates are suspected retries."""
    checker.equal("hook_events", "*", "rows", run.hooks - run.non_200, counts["rows"])
    checker.equal("hook_events", "*", "suspected_retry", run.duplicates, counts["retries"])


def compare(truth: Truth, db: Mapping[str, Any]) -> list[Mismatch]:
    """Every mismatch between ``truth`` and the rows of :func:`read_projections`.

    Sessions with a hook the receiver refused (``run.undelivered_sessions``) are left out on
    both sides, and then so are the views, which aggregate over every session.
    """
    checker = Checker(Clock(truth.run))
    check_events(checker, truth.run, db["events"])
    skip = set(truth.run.undelivered_sessions)
    sessions = [s for s in truth.sessions if s.session_id not in skip]
    legs = [leg for leg in truth.legs if leg.session_id not in skip]
    calls = [c for c in truth.calls if c.session_id not in skip]
    check_sessions(checker, sessions, _without(db["sessions"], skip))
    check_legs(checker, legs, _without(db["streams"], skip))
    check_calls(checker, calls, _without(db["calls"], skip))
    check_session_details(checker, sessions, db["details"])
    if not skip:
        check_views(checker, truth, db["views"])
    return checker.mismatches


def _without(rows: Mapping[str, Row], sessions: set[str]) -> dict[str, Row]:
    return {key: row for key, row in rows.items() if row["session_id"] not in sessions}


VIEWS = (
    "stream_viewers",
    "usage_minutes_per_app_day",
    "call_outcomes",
    "stream_end_reasons",
    "bug_reports_per_day",
)


def read_projections(database_url: str) -> dict[str, Any]:
    """Reads the read models and views a comparison needs; blocks on PostgreSQL."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> list[Row]:
                return [dict(r) for r in conn.execute(text(sql)).mappings()]

            events = rows(
                "SELECT count(*) AS rows, count(*) FILTER (WHERE suspected_retry) AS retries"
                " FROM hook_events"
            )[0]
            details: dict[str, dict[str, Any]] = defaultdict(dict)
            for r in rows(
                "SELECT session_id, array_agg(filename ORDER BY filename) AS bugs"
                " FROM bug_reports GROUP BY session_id"
            ):
                details[r["session_id"]]["bugs"] = r["bugs"]
            for r in rows("SELECT session_id, operation_id, status FROM data_messages"):
                details[r["session_id"]].setdefault("data", {})[r["operation_id"]] = r["status"]
            for table, name in (("client_log_pushes", "logs"), ("session_debug", "debug")):
                for r in rows(f"SELECT session_id, count(*) AS n FROM {table} GROUP BY 1"):  # noqa: S608
                    details[r["session_id"]][name] = r["n"]
            return {
                "events": events,
                "sessions": {r["session_id"]: r for r in rows("SELECT * FROM sessions")},
                "streams": {r["media_session_id"]: r for r in rows("SELECT * FROM streams")},
                "calls": {r["call_id"]: r for r in rows("SELECT * FROM calls")},
                "details": details,
                "views": {v: rows(f"SELECT * FROM {v}") for v in VIEWS},  # noqa: S608
            }
    finally:
        engine.dispose()
