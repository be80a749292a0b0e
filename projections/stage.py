"""Rows into PostgreSQL by binary ``COPY``: the projector's one way of writing many rows.

psycopg encodes a row for binary ``COPY`` in C (about 2 µs for 20 columns, measured here),
where formatting COPY text in Python cost 15 to 20 times more, and PostgreSQL parses binary
values faster than text. The column types come from the table definitions. A batch's domain
rows go through temporary twins of the projection tables (created once per connection,
emptied at commit: ``ON COMMIT DELETE ROWS``) and are merged from there.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection, Iterable, Sequence
from typing import Any
from uuid import UUID

import orjson
from psycopg.errors import UniqueViolation
from psycopg.types.json import JsonbBinaryDumper
from sqlalchemy import Column, Table, TableClause, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.decode import Event, JsonDocument
from projections.merge import Row
from projections.tables import hook_log

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def json_bytes(value: Any) -> bytes:
    """JSON of ``value``: a :class:`JsonDocument` is used as it is, anything else is
    serialised."""
    return value if isinstance(value, JsonDocument) else orjson.dumps(value)


class JsonbDumper(JsonbBinaryDumper):
    """``jsonb`` in binary COPY from a JSON text already at hand, or any JSON value."""

    _dumps = staticmethod(json_bytes)


@functools.cache
def copy_type(column: Column[Any]) -> str:
    """The PostgreSQL type name psycopg encodes ``column``'s values as (compiled once per
    column: every batch COPYs the same columns)."""
    return str(column.type.compile(dialect=DIALECT)).lower()


def event_values(event: Event, suspected_retry: bool) -> tuple[Any, ...]:
    """``event``'s ``hook_log`` row, in :data:`EVENT_COLUMNS` order: the same row as
    ``rows.event_row`` (a test checks), without building a dict."""
    facts = event.facts
    return (
        event.event_id,
        event.hook,
        event.known,
        event.received_at,
        event.node_id,
        facts.app,
        event.session_id,
        facts.media_session_id,
        facts.call_id,
        facts.operation_id,
        facts.status,
        event.remote_addr,
        event.payload_id,
        event.body_hash,
        suspected_retry,
        event.partition,
        event.offset,
    )


EVENT_COLUMNS = (
    "event_id", "hook", "known", "received_at", "node_id", "app", "session_id",
    "media_session_id", "call_id", "operation_id", "status", "remote_addr", "payload_id",
    "body_hash", "suspected_retry", "kafka_partition", "kafka_offset",
)  # fmt: skip
LOG_COLUMNS = [hook_log.c[name] for name in EVENT_COLUMNS]


def event_rows(events: Sequence[Event], retries: Collection[UUID]) -> list[tuple[Any, ...]]:
    """The ``hook_log`` rows of ``events``."""
    return [event_values(event, event.event_id in retries) for event in events]


async def copy_rows(
    conn: AsyncConnection,
    target: str,
    columns: Sequence[Column[Any]],
    rows: Iterable[Sequence[Any]],
) -> None:
    """COPYs ``rows`` (values in ``columns`` order, typed as those columns) into ``target``
    in the caller's transaction. Raises what psycopg raises (e.g. ``UniqueViolation``)."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None, "the connection must be open"
    names = ", ".join(c.name for c in columns)
    async with raw.cursor() as cursor:
        cursor.adapters.register_dumper(None, JsonbDumper)  # by type only, for this cursor
        statement = f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)"
        async with cursor.copy(statement) as copy:
            copy.set_types([copy_type(c) for c in columns])
            for row in rows:
                await copy.write_row(row)


async def create_stage(conn: AsyncConnection, table: Table) -> str:
    """Creates (once per connection) the temporary twin of ``table``; returns its name."""
    name = f"stage_{table.name}"
    await conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {name} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    return name


async def stage_rows(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> TableClause:
    """COPYs ``rows`` (all with the same keys) into ``stage_<table>``, emptied first (a batch
    may stage one table twice); returns that table."""
    name = await create_stage(conn, table)
    await conn.exec_driver_sql(f"DELETE FROM {name}")  # noqa: S608  # our own table name
    columns = [c for c in table.columns if c.computed is None and c.name in rows[0]]
    names = [c.name for c in columns]
    pick = operator.itemgetter(*names)  # a row's values as a tuple, picked in C
    values = pick if len(names) > 1 else lambda row: (pick(row),)
    await copy_rows(conn, name, columns, map(values, rows))
    return sql_table(name, *[sql_column(n) for n in names])


async def copy_new_rows(
    conn: AsyncConnection,
    table: Table,
    columns: Sequence[Column[Any]],
    rows: Sequence[Sequence[Any]],
) -> set[Any]:
    """COPYs ``rows`` (values in ``columns`` order, the table's one-column primary key among
    them) into ``table``, skipping those whose key is stored already; returns the keys of the
    rows inserted.

    A plain COPY in a savepoint when none is stored, the common case; else a COPY into the
    table's temporary twin and an insert that skips the conflicts, in key order (two writers
    of the same keys take their locks in the same order, so they cannot deadlock).
    """
    (key,) = table.primary_key.columns
    names = [c.name for c in columns]
    at = names.index(key.name)
    try:
        async with conn.begin_nested():
            await copy_rows(conn, table.name, columns, rows)
        return {row[at] for row in rows}
    except UniqueViolation:
        pass  # some are stored: skip them below
    stage = await create_stage(conn, table)
    await copy_rows(conn, stage, columns, rows)
    staged = sql_table(stage, *[sql_column(n) for n in names])
    stmt = postgresql.insert(table).from_select(names, select(*staged.c).order_by(staged.c[at]))
    result = await conn.execute(stmt.on_conflict_do_nothing().returning(key))
    return set(result.scalars())
