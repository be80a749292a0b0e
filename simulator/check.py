"""Compares a simulated day's ground truth with the read models and views in PostgreSQL.

The read models are compared here, row by row; the views in :mod:`simulator.check_views`.
How times are mapped and judged is :mod:`simulator.judge`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, create_engine, text

from simulator.check_views import VIEWS, check_views
from simulator.judge import Bounds, Checker, Clock, Mismatch
from simulator.truth import CallTruth, LegTruth, RunInfo, SessionTruth, Truth

Row = Mapping[str, Any]


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
    """Each leg: identity, ``createDate``, keep-alives delivered, start, end (inferred when
    its end was lost)."""
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
            ("media_provider", truth.media_provider),
            ("snapshots_requested", truth.snapshots),
        ):
            checker.equal("streams", key, column, value, row[column])
        keepalives = Bounds.count(truth.keepalives, truth.keepalives_low, truth.keepalives_high)
        checker.within("streams", key, "keepalive_count", keepalives, row["keepalive_count"])
        checker.moment(
            "streams", key, "last_keepalive_at", truth.last_keepalive, row["last_keepalive_at"]
        )
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
        ):
            checker.equal("calls", key, column, value, row[column])
        low, high = truth.dtmf_repeats_low or 0, truth.dtmf_repeats_high or 0
        if not dtmf_admits(truth.dtmf, row["dtmf_sent"], low, high):
            want = truth.dtmf if high == 0 else f"{truth.dtmf} (+{low}..{high} repeated digits)"
            checker.equal("calls", key, "dtmf_sent", want, row["dtmf_sent"])
        checker.moment("calls", key, "created_at", truth.created, row["created_at"])
        checker.moment("calls", key, "established_at", truth.established, row["established_at"])
        checker.moment("calls", key, "ended_at", truth.ended, row["ended_at"])
        talk = None if truth.established is None else truth.ended - truth.established
        checker.duration("calls", key, "talk_duration_s", talk, row["talk_duration_s"])
        if truth.hold_count:  # each hold's start and end may stray
            checker.duration(
                "calls", key, "held_s", truth.held_s, row["held_s"], intervals=truth.hold_count
            )
    checker.unexpected("calls", iter(rows.keys() - {t.call_id for t in truths}))


def check_session_details(
    checker: Checker, truths: Sequence[SessionTruth], details: Mapping[str, Mapping[str, Any]]
) -> None:
    """Bug reports (with their files), data messages, log pushes, debug events per session."""
    for truth in truths:
        key, found = truth.session_id, details.get(truth.session_id, {})
        low, high = truth.extra_rows("bug_reports")
        bugs = found.get("bugs", [])
        if not files_admit(truth.bug_reports, bugs, low, high):
            want = sorted(truth.bug_reports)
            checker.equal(
                "bug_reports",
                key,
                "filenames",
                want if high == 0 else f"{want} (+{low}..{high} without a file)",
                bugs,
            )
        checker.equal("data_messages", key, "statuses", truth.data, found.get("data", {}))
        for table, nominal, found_count in (
            ("client_log_pushes", truth.log_pushes, found.get("logs", 0)),
            ("session_debug", truth.debug_events, found.get("debug", 0)),
        ):
            low, high = truth.extra_rows(table)
            bounds = Bounds.count(nominal, nominal + low, nominal + high)
            checker.within(table, key, "count", bounds, found_count)


def files_admit(expected: Sequence[str], actual: Sequence[str | None], low: int, high: int) -> bool:
    """Whether a session's bug report files are ``expected`` and ``low``..``high`` reports
    more: the duplicated ``submitBugReport`` hooks whose copy arrived outside the retry window
    are two reports, and such a report has no file (a status names one report's file) or,
    when the status was sent twice too, the same file again."""
    extra = Counter(actual)
    extra.subtract(Counter(expected))
    if any(
        count < 0 or (count and name is not None and name not in expected)
        for name, count in extra.items()
    ):
        return False
    return low <= extra.total() <= high


def check_events(checker: Checker, run: RunInfo, counts: Row) -> None:
    """Every accepted hook is in ``hook_events``; the duplicates are the suspected retries
    (those whose receipts strayed apart under load may or may not be)."""
    checker.equal("hook_events", "*", "rows", run.hooks - run.non_200, counts["rows"])
    retries = Bounds.count(run.duplicates, run.retries_low, run.retries_high)
    checker.within("hook_events", "*", "suspected_retry", retries, counts["retries"])


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


def read_projections(database_url: str) -> dict[str, Any]:
    """Reads the read models and views a comparison needs; blocks on PostgreSQL."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return read_rows(conn)
    finally:
        engine.dispose()


def read_rows(conn: Connection) -> dict[str, Any]:
    """What :func:`compare` takes, read through ``conn`` (so uncommitted rows count too)."""

    def rows(sql: str) -> list[Row]:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]

    events = rows(
        "SELECT count(*) AS rows, count(*) FILTER (WHERE suspected_retry) AS retries"
        " FROM hook_events"
    )[0]
    return {
        "events": events,
        "sessions": {r["session_id"]: r for r in rows("SELECT * FROM sessions")},
        "streams": {r["media_session_id"]: r for r in rows("SELECT * FROM streams")},
        "calls": {r["call_id"]: r for r in rows("SELECT * FROM calls")},
        "details": read_details(rows),
        "views": {v: rows(f"SELECT * FROM {v}") for v in VIEWS},  # noqa: S608
    }


def read_details(rows: Callable[[str], list[Row]]) -> dict[str, dict[str, Any]]:
    """Bug report files, data statuses, log pushes and debug events per session."""
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
    return details


def dtmf_admits(expected: str | None, actual: str | None, low: int, high: int) -> bool:
    """Whether ``actual`` is the digits ``expected`` with ``low``..``high`` of them repeated
    (duplicated ``sendDtmf`` hooks that arrived outside the retry window): ``expected`` in
    order within ``actual``, and that many digits more."""
    if expected is None or actual is None:
        return expected == actual and low == 0
    if not low <= len(actual) - len(expected) <= high:
        return False
    digits = iter(actual)
    return all(digit in digits for digit in expected)  # a subsequence, in order
