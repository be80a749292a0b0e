"""The Alembic history upgrades an empty database to one head and downgrades it to nothing;
0005 upgrades and downgrades over stored hooks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from migrations.run import alembic_config, downgrade, upgrade
from projections.decode import Event, decode_record
from projections.tables import metadata
from projections.upsert import insert_events, stored_copies
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


async def test_0005_keeps_the_stored_hooks_and_finds_their_retries(database_url: str) -> None:
    """Upgraded over a stored hook, the new retry lookup finds it; downgraded, it stays."""
    body = sample("StreamKeepAliveEvent")
    envelopes = [
        story_event(n, "StreamKeepAliveEvent", body, 10.0 + 2 * n).envelope() for n in (0, 1)
    ]
    original, retry = (
        decode_record(Record("hooks", 0, n, e.value, e.headers())) for n, e in enumerate(envelopes)
    )
    assert isinstance(original, Event)
    assert isinstance(retry, Event)
    upgrade(database_url, "0004")
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await insert_events(conn, [original], ())
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
