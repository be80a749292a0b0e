"""Ends inferred from silence, next to another projector's transactions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.recompute import close_silent
from projections.tables import streams

pytestmark = [pytest.mark.postgres]

NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


async def test_the_silence_sweep_skips_rows_another_transaction_holds(engine: AsyncEngine) -> None:
    silent = NOW - timedelta(minutes=5)
    async with engine.begin() as conn:
        await conn.execute(
            insert(streams),
            [
                {
                    "media_session_id": leg,
                    "status_rank": 1,
                    "last_seen_at": silent,
                    "keepalive_count": 3,
                }
                for leg in ("held", "free")
            ],
        )
    # another projector is writing "held" (a keep-alive it has not committed yet)
    async with engine.connect() as other:
        await other.begin()
        await other.execute(
            update(streams).where(streams.c.media_session_id == "held").values(keepalive_count=4)
        )
        async with engine.begin() as conn:  # must not wait for the other transaction
            await asyncio.wait_for(close_silent(conn, NOW, 30.0, 60.0, 600.0), timeout=10)
        await other.rollback()
    async with engine.connect() as conn:
        result = await conn.execute(select(streams.c.media_session_id, streams.c.inferred_end_at))
        ends = {leg: end for leg, end in result}
    assert ends == {"held": None, "free": silent}
