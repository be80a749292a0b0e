"""COPY rows into temporary twins of the projection tables (the fast path for big batches).

A multi-row ``INSERT`` of thousands of rows spends most of its time building and parsing the
statement; ``COPY`` of preformatted text lines does not. Each stage table is created once per
connection, holds one batch and is emptied at commit (``ON COMMIT DELETE ROWS``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import ARRAY, Boolean, DateTime, Table, TableClause
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.decode import Event, JsonText
from projections.merge import Row
from projections.rows import status_of, text_of

Formatter = Callable[[Any], str]
NULL = "\\N"


def escape(text: str) -> str:
    """``text`` in COPY text format: backslash, newline, CR and tab escaped.

    Membership tests and ``replace`` run in C; ``str.translate`` with a table is far slower.
    """
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    return text


def text_field(value: Any) -> str:
    return NULL if value is None else escape(str(value))


def json_field(value: Any) -> str:
    """JSON text: a :class:`JsonText` is used as it is, anything else is serialised."""
    if value is None:
        return NULL
    return escape(value if isinstance(value, JsonText) else orjson.dumps(value).decode())


def bool_field(value: Any) -> str:
    return NULL if value is None else ("t" if value else "f")


def time_field(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def array_field(value: Sequence[str] | None) -> str:
    """A ``text[]`` literal: every element quoted, quotes and backslashes escaped."""
    if value is None:
        return NULL
    items = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in map(str, value))
    return escape("{" + ",".join(items) + "}")


def formatter_of(column: Any) -> Formatter:
    """The COPY formatter for a column's type (plain ``str()`` suits numbers, UUIDs, text)."""
    kind = column.type
    if isinstance(kind, JSONB):
        return json_field
    if isinstance(kind, ARRAY):
        return array_field
    if isinstance(kind, Boolean):
        return bool_field
    if isinstance(kind, DateTime):
        return time_field
    return text_field


def copy_text(formatters: Sequence[tuple[str, Formatter]], rows: Sequence[Row]) -> bytes:
    """The COPY text of ``rows`` for the named columns."""
    lines = ["\t".join([fmt(row[name]) for name, fmt in formatters]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode()


def _optional(value: str | None) -> str:
    return NULL if value is None else escape(value)


def event_line(event: Event, suspected_retry: bool) -> str:
    """The COPY line of ``event``'s ``hook_events`` row, columns in :data:`EVENT_COLUMNS`
    order: the same row as ``rows.event_row`` (a test checks), without building a dict."""
    body = event.body
    return "\t".join(
        (
            str(event.event_id),
            escape(event.hook),
            "t" if event.known else "f",
            event.received_at.isoformat(),
            _optional(event.node_id),
            _optional(text_of(body, "appKey")),
            _optional(event.session_id),
            _optional(text_of(body, "mediaSessionId")),
            _optional(text_of(body, "callId")),
            _optional(text_of(body, "operationId")),
            _optional(status_of(event)),
            _optional(event.remote_addr),
            escape(event.payload),
            escape(event.body_hash),
            "t" if suspected_retry else "f",
            str(event.partition),
            str(event.offset),
        )
    )


EVENT_COLUMNS = (
    "event_id", "hook", "known", "received_at", "node_id", "app", "session_id",
    "media_session_id", "call_id", "operation_id", "status", "remote_addr", "payload",
    "body_hash", "suspected_retry", "kafka_partition", "kafka_offset",
)  # fmt: skip


def events_copy_text(events: Sequence[Event], retries: Collection[UUID]) -> bytes:
    """The COPY text of the ``hook_events`` rows of ``events``."""
    lines = [event_line(event, event.event_id in retries) for event in events]
    lines.append("")
    return "\n".join(lines).encode()


async def copy_into(conn: AsyncConnection, target: str, names: Sequence[str], text: bytes) -> None:
    """COPYs COPY-format ``text`` into ``target`` in the caller's transaction.

    Raises what psycopg raises (e.g. ``UniqueViolation``).
    """
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None, "the connection must be open"
    statement = f"COPY {target} ({', '.join(names)}) FROM STDIN"
    async with raw.cursor() as cursor, cursor.copy(statement) as copy:
        await copy.write(text)


async def create_stage(conn: AsyncConnection, table: Table) -> str:
    """Creates (once per connection) the temporary twin of ``table``; returns its name."""
    name = f"stage_{table.name}"
    await conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {name} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    return name


async def stage_rows(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> TableClause:
    """COPYs ``rows`` (all with the same keys) into ``stage_<table>``; returns that table."""
    name = await create_stage(conn, table)
    columns = [c for c in table.columns if c.computed is None and c.name in rows[0]]
    formatters = [(c.name, formatter_of(c)) for c in columns]
    names = [c.name for c in columns]
    await copy_into(conn, name, names, copy_text(formatters, rows))
    return sql_table(name, *[sql_column(n) for n in names])
