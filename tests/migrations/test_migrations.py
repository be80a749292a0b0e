"""The Alembic history upgrades an empty database to one head and downgrades it to nothing;
0005 and 0007 upgrade and downgrade over stored hooks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from migrations.run import alembic_config, downgrade, upgrade
from projections.decode import Event, JsonDocument, decode_record
from projections.tables import metadata
from projections.upsert import stored_copies
from tests.projections.story import Record, sample, story_event

pytestmark = pytest.mark.postgres


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) | set(inspect(conn).get_view_names())
    finally:
        engine.dispose()


def test_history_has_one_head(database_url: str) -> None:
    assert len(ScriptDirectory.from_config(alembic_config(database_url)).get_heads()) == 1


def test_upgrade_head_then_downgrade_base(database_url: str) -> None:
    assert table_names(database_url) == set()
    upgrade(database_url)
    assert set(metadata.tables) <= table_names(database_url)
    downgrade(database_url)
    assert table_names(database_url) == {"alembic_version"}


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert "projection_positions" in table_names(database_url)


def stored_row(event: Event) -> dict[str, Any]:
    """``event``'s row as ``hook_events`` stored it before migration 0007."""
    return {
        "event_id": event.event_id,
        "hook": event.hook,
        "known": event.known,
        "received_at": event.received_at,
        "session_id": event.session_id,
        "payload": event.payload.decode(),
        "body_hash": event.body_hash,
        "kafka_offset": event.offset,
    }


INSERT_HOOK_EVENT = text("""
INSERT INTO hook_events (event_id, hook, known, received_at, session_id, payload, body_hash,
                         suspected_retry, kafka_partition, kafka_offset)
VALUES (:event_id, :hook, :known, :received_at, :session_id, CAST(:payload AS jsonb),
        :body_hash, false, 0, :kafka_offset)
""")


def keepalives(count: int) -> list[Event]:
    """``count`` keep-alives of one leg, 2 s apart: the same body each time."""
    body = sample("StreamKeepAliveEvent")
    envelopes = [
        story_event(n, "StreamKeepAliveEvent", body, 10.0 + 2 * n).envelope() for n in range(count)
    ]
    events = [
        decode_record(Record("hooks", 0, n, e.value, e.headers())) for n, e in enumerate(envelopes)
    ]
    assert all(isinstance(e, Event) for e in events)
    return cast("list[Event]", events)


async def test_0005_keeps_the_stored_hooks_and_finds_their_retries(database_url: str) -> None:
    """Upgraded over a stored hook, the new retry lookup finds it; downgraded, it stays."""
    original, retry = keepalives(2)
    upgrade(database_url, "0004")
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(INSERT_HOOK_EVENT, stored_row(original))
        upgrade(database_url)
        async with engine.connect() as conn:
            copies = await stored_copies(conn, [retry], timedelta(seconds=5))
        assert copies == {retry.body_hash: [(original.event_id, original.received_at)]}
        downgrade(database_url, "0004")
        async with engine.connect() as conn:
            stored = await conn.execute(text("SELECT event_id FROM hook_events"))
            indexes = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'hook_events'")
            )
            assert stored.scalars().all() == [original.event_id]
            assert "ix_hook_events_session_id" in indexes.scalars().all()
    finally:
        await engine.dispose()


async def test_0007_stores_each_body_once_and_keeps_every_hook(database_url: str) -> None:
    """Upgraded over stored hooks, the view ``hook_events`` shows the same rows, and their
    3 bodies (one repeated) are stored twice; downgraded, the table holds them again."""
    events = keepalives(3)
    other = events[2]._replace(payload=JsonDocument(b'{"other": true}'))
    rows = [stored_row(e) for e in (*events[:2], other)]
    upgrade(database_url, "0006")
    engine = create_async_engine(database_url)
    query = text("SELECT event_id, payload FROM hook_events ORDER BY event_id")
    try:
        async with engine.begin() as conn:
            await conn.execute(INSERT_HOOK_EVENT, rows)
        async with engine.connect() as conn:
            before = (await conn.execute(query)).all()
        upgrade(database_url)
        async with engine.connect() as conn:
            after = (await conn.execute(query)).all()
            payloads = await conn.execute(text("SELECT count(*) FROM hook_payloads"))
            assert payloads.scalar_one() == 2
        assert after == before
        assert [payload for _, payload in after] == [json.loads(r["payload"]) for r in rows]
        downgrade(database_url, "0006")
        async with engine.connect() as conn:
            assert (await conn.execute(query)).all() == before
            indexes = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'hook_events'")
            )
            assert "ix_hook_events_session_id_received_at" in indexes.scalars().all()
        assert "hook_payloads" not in table_names(database_url)
    finally:
        await engine.dispose()
