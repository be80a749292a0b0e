"""The fast path for ``StreamKeepAliveEvent``: most of the traffic, a fraction of the work.

A batch holds many keep-alives of the same legs. Instead of one partial row per event and a
fold, each leg and each session gets one partial row built from its group of keep-alives. The
result equals folding ``session_part``/``stream_part`` of every event (a test checks): counts
add up, first and last times are the extremes, the latest event sets status and attributes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from projections.decode import Event, from_millis
from projections.merge import Row
from projections.rows import SESSIONS, STREAMS, stream_attrs, stream_part

if TYPE_CHECKING:
    from projections.batch import BatchRows


def group_by_leg(events: Sequence[Event]) -> dict[str | None, list[Event]]:
    """Keep-alives by ``mediaSessionId`` (None for the ones without)."""
    legs: dict[str | None, list[Event]] = {}
    for event in events:
        leg = event.body.get("mediaSessionId")
        legs.setdefault(leg if isinstance(leg, str) and leg else None, []).append(event)
    return legs


def leg_row(events: Sequence[Event]) -> Row:
    """One partial ``streams`` row for all keep-alives of one leg."""
    ordered = sorted(events, key=lambda e: (e.received_at, e.event_id), reverse=True)
    row = stream_part(ordered[0])
    assert row is not None, "a keep-alive with a mediaSessionId has a stream row"
    first = ordered[-1].received_at
    created = [t for e in events if (t := from_millis(e.body.get("createDate"))) is not None]
    row.update(
        first_seen_at=first,
        started_at=first,
        created_at=min(created, default=None),
        keepalive_count=len(events),
    )
    missing = [name for name in STREAMS.attrs if row[name] is None]
    for event in ordered[1:]:
        if not missing:
            break
        attrs = stream_attrs(event.body)
        for name in [n for n in missing if attrs[n] is not None]:
            row[name] = attrs[name]
            missing.remove(name)
    return row


def session_rows(events: Sequence[Event]) -> list[Row]:
    """One partial ``sessions`` row per session: first and last seen, the app."""
    rows: dict[tuple[str, str], Row] = {}
    for event in events:
        if event.session_id is None:
            continue
        key = (event.node_id or "", event.session_id)
        row = rows.get(key)
        at, app = event.received_at, event.body.get("appKey")
        if row is None:
            row = rows[key] = SESSIONS.empty({"node_id": key[0], "session_id": key[1]})
            row.update(first_seen_at=at, last_seen_at=at)
        row["first_seen_at"] = min(row["first_seen_at"], at)
        row["last_seen_at"] = max(row["last_seen_at"], at)
        if row["app"] is None and isinstance(app, str) and app:
            row["app"] = app
    return list(rows.values())


def add_keepalive_parts(events: Sequence[Event], into: BatchRows) -> None:
    """Appends the pre-folded session and stream rows of ``events`` to ``into``."""
    if not events:
        return
    sessions = session_rows(events)
    into.sessions.extend(sessions)
    for leg, group in group_by_leg(events).items():
        if leg is not None:
            into.streams.append(leg_row(group))
    into.count_sessions.update(_keys(sessions))


def _keys(rows: Collection[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(row["node_id"], row["session_id"]) for row in rows}
