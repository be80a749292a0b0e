"""SQL that writes the read models; every function runs inside the caller's transaction.

Each write is idempotent for its input and merges by the rules of ``projections.merge``, so a
repeated status changes nothing and arrival order does not matter.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    func,
    literal_column,
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
from projections.stage import DIALECT, LOG_COLUMNS, copy_new_rows, event_rows, stage_rows
from projections.tables import hook_log

logger = logging.getLogger(__name__)


# A retry has the same body as its original, so the same session: its copies are among the
# session's hooks near its receive time (index (session_id, received_at)); hooks without a
# session have a partial index of their own (migration 0005). One index probe per key, always:
# ``OFFSET 0`` keeps the planner from flattening the lateral subqueries into a hash join that
# reads the whole table (it did for 5,000 keys and 150,000 rows: 260 ms against 30 ms).
STORED_COPIES = text("""
SELECT DISTINCT h.body_hash, h.event_id, h.received_at
FROM unnest(CAST(:sessions AS text[]), string_to_array(:hashes, ','),
            CAST(string_to_array(:times, ',') AS timestamptz[])) AS k(s, h, t)
CROSS JOIN LATERAL (
    SELECT body_hash, event_id, received_at FROM hook_log
    WHERE session_id = k.s AND body_hash = k.h
      AND received_at BETWEEN k.t - CAST(:window AS interval) AND k.t + CAST(:window AS interval)
    UNION ALL
    SELECT body_hash, event_id, received_at FROM hook_log
    WHERE k.s IS NULL AND session_id IS NULL AND body_hash = k.h
      AND received_at BETWEEN k.t - CAST(:window AS interval) AND k.t + CAST(:window AS interval)
    OFFSET 0
) AS h
""")


async def stored_copies(
    conn: AsyncConnection, events: Sequence[Event], window: timedelta
) -> dict[str, list[tuple[UUID, datetime]]]:
    """Stored events of the session, hook and body hash of one of ``events`` received within
    ``window`` of it (the event itself, if it is stored already): hash -> (id, time)."""
    if not events:
        return {}
    # texts PostgreSQL splits (hashes are hex): psycopg formats a list parameter element by
    # element, ~10 times slower for a batch
    params = {
        "sessions": text_array([e.session_id for e in events]),
        "hashes": ",".join(e.body_hash for e in events),
        "times": ",".join(e.received_at.isoformat() for e in events),
        "window": window,
    }
    copies: dict[str, list[tuple[UUID, datetime]]] = {}
    for body_hash, event_id, received_at in await conn.execute(STORED_COPIES, params):
        copies.setdefault(body_hash, []).append((event_id, received_at))
    return copies


def text_array(values: Iterable[str | None]) -> str:
    """The PostgreSQL literal of a ``text[]`` of ``values`` (None is NULL)."""
    elements = (
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    )
    return "{" + ",".join(elements) + "}"


async def insert_events(
    conn: AsyncConnection, events: Sequence[Event], retries: Collection[UUID]
) -> set[UUID]:
    """Inserts the ``hook_log`` rows of ``events``; returns the ids actually inserted.

    The caller has already left out the ids it found stored, so the plain COPY nearly always
    succeeds; only if another consumer stored one of them meanwhile (a rebalance) are those
    skipped (:func:`~projections.stage.copy_new_rows`).
    """
    if not events:
        return set()
    inserted = await copy_new_rows(conn, hook_log, LOG_COLUMNS, event_rows(events, retries))
    if len(inserted) < len(events):
        logger.info("projections.events.conflict", extra={"events": len(events)})
    return inserted


async def insert_new(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> None:
    """Inserts rows keyed by event id (bug reports, log pushes, debug); repeats do nothing."""
    if rows:
        await conn.execute(insert(table).on_conflict_do_nothing(), list(rows))


def merge_set(
    table: Table, model: Model, ex: Any, present: Collection[str]
) -> dict[str, ColumnElement[Any]]:
    """The ``ON CONFLICT DO UPDATE SET`` of ``model``'s rules (``ex`` = ``excluded``).

    Only the ``present`` columns (the ones the partial rows carry) are merged: a column a row
    leaves empty would merge to the stored value anyway, so leaving it out of the ``SET``
    changes nothing and saves PostgreSQL the work.
    """
    t = table.c
    values: dict[str, ColumnElement[Any]] = {}
    for name in [n for n in model.keep if n in present]:
        values[name] = func.coalesce(t[name], ex[name])
    for name in [n for n in model.first if n in present]:
        values[name] = func.least(t[name], ex[name])
    for name in [n for n in model.last if n in present]:
        values[name] = func.greatest(t[name], ex[name])
    for name in [n for n in model.sums if n in present]:
        values[name] = t[name] + ex[name]
    for group in [g for g in model.statuses if g.at in present]:
        new_key = tuple_(ex[group.rank], ex[group.at], ex[group.event])
        old_key = tuple_(t[group.rank], t[group.at], t[group.event])
        wins = and_(ex[group.at].is_not(None), or_(t[group.at].is_(None), new_key > old_key))
        values.update({name: case((wins, ex[name]), else_=t[name]) for name in group.columns})
    if model.attrs and model.attrs_at in present:
        at = model.attrs_at
        newer = and_(ex[at].is_not(None), or_(t[at].is_(None), ex[at] > t[at]))
        for name in model.attrs:
            values[name] = case(
                (newer, func.coalesce(ex[name], t[name])), else_=func.coalesce(t[name], ex[name])
            )
        values[at] = func.greatest(t[at], ex[at])
    if "inferred_end_at" in t and "last_seen_at" in present:
        # a later event proves the row alive, or a real end arrived: drop the inferred end
        reopened = or_(ex["last_seen_at"] > t["inferred_end_at"], ex["status_rank"] == 2)
        for name in ("inferred_end_at", "inferred_reason"):
            values[name] = case((reopened, None), else_=t[name])
    return values


async def upsert_model(
    conn: AsyncConnection,
    table: Table,
    model: Model,
    rows: Sequence[Row],
    report: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Merges folded partial rows (one per key, all with the same columns) into ``table`` by
    ``model``'s rules; returns the ``report`` columns of the rows it created."""
    if not rows:
        return []
    await stage_rows(conn, table, rows)
    statement = merge_statement(table, model, tuple(rows[0]), tuple(report))
    result = await conn.exec_driver_sql(statement)
    return [tuple(row) for row in result] if report else []


@functools.lru_cache(maxsize=64)
def merge_statement(
    table: Table, model: Model, names: tuple[str, ...], report: tuple[str, ...]
) -> str:
    """The SQL that merges ``stage_<table>`` (columns ``names``) into ``table``, returning the
    ``report`` columns of the rows it created. Built and compiled once per shape: SQLAlchemy
    spent more time on these large statements than PostgreSQL did."""
    stage = sql_table(f"stage_{table.name}", *[sql_column(n) for n in names])
    stmt = insert(table).from_select(list(names), select(*stage.c))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(model.key), set_=merge_set(table, model, stmt.excluded, names)
    )
    query: Any = stmt
    if report:
        created: ColumnElement[bool] = literal_column("xmax = 0").label("created")  # inserted
        merged = stmt.returning(*[table.c[n] for n in report], created).cte("merged")
        query = select(*[merged.c[n] for n in report]).where(merged.c.created)
    return str(query.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))


async def watermark(conn: AsyncConnection) -> datetime | None:
    """The latest receive time stored: the projection's notion of "now"."""
    result = await conn.execute(select(func.max(hook_log.c.received_at)))
    latest: datetime | None = result.scalar_one_or_none()
    return latest
