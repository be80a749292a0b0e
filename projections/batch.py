"""One batch of events -> all its partial rows, grouped by table (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from projections.decode import SECRET_FIELDS, Event, drop_secrets
from projections.facts import text_of
from projections.keepalives import keepalive_rows
from projections.merge import Row
from projections.rows import (
    call_part,
    data_part,
    session_part,
    status_of,
    stream_part,
)


@dataclass(slots=True)
class BatchRows:
    """Everything one batch writes, before folding (the keep-alive rows are folded already,
    one per key, and narrow: see ``projections.keepalives``)."""

    sessions: list[Row] = field(default_factory=list)
    streams: list[Row] = field(default_factory=list)
    calls: list[Row] = field(default_factory=list)
    data_messages: list[Row] = field(default_factory=list)
    bug_reports: list[Row] = field(default_factory=list)
    client_log_pushes: list[Row] = field(default_factory=list)
    session_debug: list[Row] = field(default_factory=list)
    keepalive_sessions: list[Row] = field(default_factory=list)
    keepalive_legs: list[Row] = field(default_factory=list)
    hold_calls: set[str] = field(default_factory=set)
    bug_sessions: set[tuple[str, str]] = field(default_factory=set)
    count_sessions: set[tuple[str, str]] = field(default_factory=set)


CONTEXT_FIELDS = frozenset({"nodeId", "appKey", "sessionId"})


def _owner(event: Event) -> Row:
    return {
        "event_id": event.event_id,
        "node_id": event.node_id,
        "session_id": event.session_id,
        "app": event.facts.app,
    }


def diagnostic_parts(event: Event, secret_fields: Collection[str], into: BatchRows) -> None:
    """Appends the bug report, log push or debug row of ``event`` to ``into``."""
    body, hook = event.body, event.hook
    if hook == "submitBugReport":
        report = {k: v for k, v in body.items() if k not in CONTEXT_FIELDS}
        into.bug_reports.append(
            _owner(event)
            | {
                "submitted_at": event.received_at,
                "type": text_of(body, "type"),
                "text": text_of(body, "text"),
                "report": drop_secrets(report, secret_fields),
            }
        )
    elif hook == "pushLogs":
        logs = body.get("logs") if isinstance(body.get("logs"), str) else None
        into.client_log_pushes.append(
            _owner(event)
            | {
                "pushed_at": event.received_at,
                "lines": len(logs.splitlines()) if logs else 0,
                "bytes": len(logs.encode()) if logs else 0,
                "logs": logs,
            }
        )
    elif hook in {"sessionDebug", "SessionDebugStatusEvent"}:
        value = text_of(body, "command") if hook == "sessionDebug" else status_of(event)
        into.session_debug.append(
            _owner(event) | {"at": event.received_at, "hook": hook, "value": value}
        )


def batch_rows(
    events: Iterable[Event], secret_fields: Collection[str] = SECRET_FIELDS
) -> BatchRows:
    """The domain rows of ``events`` (new, non-retry events only), not yet folded."""
    rows = BatchRows()
    keepalives: list[Event] = []
    for event in events:
        if event.hook == "StreamKeepAliveEvent":
            keepalives.append(event)
            continue
        session = session_part(event, secret_fields)
        if session is not None:
            rows.sessions.append(session)
        stream, call = stream_part(event), call_part(event)
        data = data_part(event, secret_fields)
        for part, target in (
            (stream, rows.streams),
            (call, rows.calls),
            (data, rows.data_messages),
        ):
            if part is not None:
                target.append(part)
        if (stream or call) and session is not None:
            rows.count_sessions.add((session["node_id"], session["session_id"]))
        if call is not None and event.hook in {"CallStatusEvent", "sendDtmf"}:
            rows.hold_calls.add(call["call_id"])
        if event.hook in {"submitBugReport", "BugReportStatusEvent"} and session is not None:
            rows.bug_sessions.add((session["node_id"], session["session_id"]))
        diagnostic_parts(event, secret_fields, rows)
    rows.keepalive_sessions, rows.keepalive_legs = keepalive_rows(keepalives)
    return rows
