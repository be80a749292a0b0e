"""SQL that writes the read models; every function runs inside the caller's transaction.

Each write is idempotent for its input and merges by the rules of ``projections.merge``, so a
repeated status changes nothing and arrival order does not matter.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.errors import UniqueViolation
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.decode import Event
from projections.merge import Model, Row
from projections.stage import (
    EVENT_COLUMNS,
    copy_into,
    create_stage,
    events_copy_text,
    stage_rows,
)
from projections.tables import hook_events

logger = logging.getLogger(__name__)


STORED_COPIES = text("""
SELECT body_hash, event_id, received_at FROM hook_events
WHERE body_hash = ANY(CAST(:hashes AS text[])) AND received_at BETWEEN :low AND :high
""")


async def stored_copies(
    conn: AsyncConnection, hashes: Collection[str], low: datetime, high: datetime
) -> dict[str, list[tuple[UUID, datetime]]]:
    """Stored events with one of ``hashes`` received in ``[low, high]``: hash -> (id, time)."""
    if not hashes:
        return {}
    params = {"hashes": list(hashes), "low": low, "high": high}
    copies: dict[str, list[tuple[UUID, datetime]]] = {}
    for body_hash, event_id, received_at in await conn.execute(STORED_COPIES, params):
        copies.setdefault(body_hash, []).append((event_id, received_at))
    return copies


async def insert_events(
    conn: AsyncConnection, events: Sequence[Event], retries: Collection[UUID]
) -> set[UUID]:
    """Inserts the ``hook_events`` rows of ``events``; returns the ids actually inserted.

    The caller has already left out the ids it found stored, so a plain COPY (in a savepoint)
    nearly always succeeds; only if another consumer stored one of them meanwhile (a
    rebalance) does it fall back to an insert that skips the conflicts.
    """
    if not events:
        return set()
    text = events_copy_text(events, retries)
    try:
        async with conn.begin_nested():
            await copy_into(conn, "hook_events", EVENT_COLUMNS, text)
        return {event.event_id for event in events}
    except UniqueViolation:
        logger.info("projections.events.conflict", extra={"events": len(events)})
    stage = await create_stage(conn, hook_events)
    await copy_into(conn, stage, EVENT_COLUMNS, text)
    staged = sql_table(stage, *[sql_column(n) for n in EVENT_COLUMNS])
    stmt = insert(hook_events).from_select(EVENT_COLUMNS, select(*staged.c))
    returning = stmt.on_conflict_do_nothing().returning(hook_events.c.event_id)
    return {row[0] for row in await conn.execute(returning)}


async def insert_new(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> None:
    """Inserts rows keyed by event id (bug reports, log pushes, debug); repeats do nothing."""
    if rows:
        await conn.execute(insert(table).on_conflict_do_nothing(), list(rows))


def merge_set(table: Table, model: Model, ex: Any) -> dict[str, ColumnElement[Any]]:
    """The ``ON CONFLICT DO UPDATE SET`` of ``model``'s rules (``ex`` = ``excluded``)."""
    t = table.c
    values: dict[str, ColumnElement[Any]] = {}
    for name in model.keep:
        values[name] = func.coalesce(t[name], ex[name])
    for name in model.first:
        values[name] = func.least(t[name], ex[name])
    for name in model.last:
        values[name] = func.greatest(t[name], ex[name])
    for name in model.sums:
        values[name] = t[name] + ex[name]
    for group in model.statuses:
        new_key = tuple_(ex[group.rank], ex[group.at], ex[group.event])
        old_key = tuple_(t[group.rank], t[group.at], t[group.event])
        wins = and_(ex[group.at].is_not(None), or_(t[group.at].is_(None), new_key > old_key))
        values.update({name: case((wins, ex[name]), else_=t[name]) for name in group.columns})
    if model.attrs:
        at = model.attrs_at
        newer = and_(ex[at].is_not(None), or_(t[at].is_(None), ex[at] > t[at]))
        for name in model.attrs:
            values[name] = case(
                (newer, func.coalesce(ex[name], t[name])), else_=func.coalesce(t[name], ex[name])
            )
        values[at] = func.greatest(t[at], ex[at])
    if "inferred_end_at" in t:
        # a later event proves the row alive, or a real end arrived: drop the inferred end
        reopened = or_(ex["last_seen_at"] > t["inferred_end_at"], ex["status_rank"] == 2)
        for name in ("inferred_end_at", "inferred_reason"):
            values[name] = case((reopened, None), else_=t[name])
    return values


async def upsert_model(
    conn: AsyncConnection, table: Table, model: Model, rows: Sequence[Row]
) -> None:
    """Merges folded partial rows (one per key) into ``table`` by ``model``'s rules."""
    if not rows:
        return
    stage = await stage_rows(conn, table, rows)
    names = list(rows[0])
    stmt = insert(table).from_select(names, select(*[stage.c[n] for n in names]))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(model.key), set_=merge_set(table, model, stmt.excluded)
    )
    await conn.execute(stmt)


async def watermark(conn: AsyncConnection) -> datetime | None:
    """The latest receive time stored: the projection's notion of "now"."""
    result = await conn.execute(select(func.max(hook_events.c.received_at)))
    latest: datetime | None = result.scalar_one_or_none()
    return latest


def window_bounds(times: Sequence[datetime], window: timedelta) -> tuple[datetime, datetime]:
    """The receive-time range that can hold a copy of an event received at ``times``."""
    return min(times) - window, max(times) + window
