"""The fast path for ``StreamKeepAliveEvent``: most of the traffic, a fraction of the work.

Each leg and each session of a batch's keep-alives gets one *narrow* partial row: only the
columns a keep-alive can set (leg: identity, first/last seen, start, ``createDate``, keep-alive
count and time, status, attributes; session: identity, app, first/last seen). They merge by
the rules of ``projections.merge`` and only those columns are written: the others stay as
they are, which is what merging a partial row whose other columns are empty does. Widening a
narrow row with ``Model.empty`` gives exactly the fold of ``session_part``/``stream_part`` of
every keep-alive (a test checks): counts add up, first and last times are the extremes, the
newest status and the newest value of each attribute win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.decode import Event
from projections.merge import Row
from projections.rows import SESSIONS, STREAMS
from projections.tables import sessions, streams
from projections.upsert import upsert_model


def _newest_first(event: Event) -> tuple[Any, ...]:
    return (event.received_at, event.event_id)


def group_by_leg(events: Sequence[Event]) -> dict[str, list[Event]]:
    """Keep-alives by ``mediaSessionId`` (the ones without one name no leg)."""
    legs: dict[str, list[Event]] = {}
    for event in events:
        leg = event.facts.media_session_id
        if leg is not None:
            group = legs.get(leg)
            if group is None:
                legs[leg] = [event]
            else:
                group.append(event)
    return legs


def leg_row(leg: str, events: Sequence[Event]) -> Row:
    """One narrow ``streams`` row for all keep-alives of one leg."""
    if len(events) == 1:  # the common case: a leg sends one keep-alive per interval
        ordered = events
        created_at = events[0].facts.created_at
    else:
        ordered = sorted(events, key=_newest_first, reverse=True)
        created_at = min((t for e in events if (t := e.facts.created_at) is not None), default=None)
    latest, first = ordered[0], ordered[-1].received_at
    at = latest.received_at
    return {
        "media_session_id": leg,
        "node_id": latest.node_id,
        "session_id": latest.session_id,
        "app": latest.facts.app,
        "first_seen_at": first,
        "last_seen_at": at,
        "started_at": first,
        "created_at": created_at,
        "last_keepalive_at": at,
        "keepalive_count": len(events),
        **_leg_status(ordered),
        **_leg_attrs(ordered),
        STREAMS.attrs_at: at,
    }


def _leg_status(ordered: Sequence[Event]) -> Row:
    """The status of the newest keep-alive that carries one (all are rank 1)."""
    for event in ordered:
        status = event.facts.status
        if status is not None:
            return {
                "status": status,
                "status_rank": 1,
                "status_at": event.received_at,
                "status_event": event.event_id,
            }
    return {"status": None, "status_rank": None, "status_at": None, "status_event": None}


def _leg_attrs(ordered: Sequence[Event]) -> Mapping[str, Any]:
    """Each attribute from the newest keep-alive that carries a value for it (the newest
    one's own attributes, shared, when it has a value for each or is the only one)."""
    newest = ordered[0].facts.stream
    if len(ordered) == 1:
        return newest
    missing = [name for name, value in newest.items() if value is None]
    if not missing:
        return newest
    attrs = dict(newest)
    for event in ordered[1:]:
        if not missing:
            break
        older = event.facts.stream
        for name in [n for n in missing if older[n] is not None]:
            attrs[name] = older[name]
            missing.remove(name)
    return attrs


def session_rows(events: Sequence[Event]) -> list[Row]:
    """One narrow ``sessions`` row (identity, app, first and last seen) per session."""
    rows: dict[tuple[str, str], Row] = {}
    for event in events:
        if event.session_id is None:
            continue
        key = (event.node_id or "", event.session_id)
        at = event.received_at
        row = rows.get(key)
        if row is None:
            rows[key] = {
                "node_id": key[0],
                "session_id": key[1],
                "app": event.facts.app,
                "first_seen_at": at,
                "last_seen_at": at,
            }
            continue
        if at < row["first_seen_at"]:
            row["first_seen_at"] = at
        elif at > row["last_seen_at"]:
            row["last_seen_at"] = at
        if row["app"] is None:
            row["app"] = event.facts.app
    return list(rows.values())


def keepalive_rows(events: Sequence[Event]) -> tuple[list[Row], list[Row]]:
    """The narrow session rows and leg rows of a batch's keep-alives."""
    legs = [leg_row(leg, group) for leg, group in group_by_leg(events).items()]
    return session_rows(events), legs


async def project_keepalives(
    conn: AsyncConnection, session_rows: Sequence[Row], leg_rows: Sequence[Row]
) -> set[tuple[str, str]]:
    """Merges the keep-alives' narrow rows into ``sessions`` and ``streams``; returns the
    sessions of legs this created, whose stream counts change (a keep-alive of a known leg
    changes no count)."""
    await upsert_model(conn, sessions, SESSIONS, session_rows)
    created = await upsert_model(conn, streams, STREAMS, leg_rows, report=("node_id", "session_id"))
    return {(node or "", session) for node, session in created if session}
