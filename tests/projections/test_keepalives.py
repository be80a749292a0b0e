"""The keep-alive fast path (folded in PostgreSQL) gives exactly the rows of the generic
per-event fold in Python, whatever the batches and their order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.consume import ProjectorConfig, apply_batch
from projections.decode import BodyCache, Event, decode_record
from projections.merge import Model, Row, fold
from projections.rows import SESSIONS, STREAMS, session_part, stream_part
from projections.tables import sessions, streams
from tests.projections.story import (
    ORPHAN,
    PLAYER,
    PUB,
    SESSION2,
    Record,
    sample,
    story_event,
)
from wcs_audit.settings import Settings

pytestmark = pytest.mark.postgres

PLAYS = {"mediaSessionId": PLAYER, "published": False}


def keepalives() -> list[Record]:
    """Keep-alives of three legs and one without a leg, with odd values the rules must skip."""
    bodies: list[tuple[dict[str, Any], float]] = [
        (sample("StreamKeepAliveEvent"), 14 + 10 * n) for n in range(5)
    ]
    bodies += [  # a player whose first keep-alives do not know their size yet
        (sample("StreamKeepAliveEvent", **PLAYS, width=0, height=0), 21),
        (sample("StreamKeepAliveEvent", **PLAYS, width=640, height=None), 31),
        (sample("StreamKeepAliveEvent", **PLAYS, width=0, createDate=1), 41),
        (sample("StreamKeepAliveEvent", **PLAYS, width=0, status="PAUSED"), 41),
        # the newest carries no status, and values that do not count: the rules skip them
        (sample("StreamKeepAliveEvent", **PLAYS, width=1280.0, name="", status=None), 45),
        (sample("StreamKeepAliveEvent", **PLAYS, width=True, createDate=1e20, status=None), 55),
    ]
    bodies += [(sample("StreamKeepAliveEvent", sessionId=SESSION2, mediaSessionId=ORPHAN), 18)]
    bodies += [(sample("StreamKeepAliveEvent", mediaSessionId=None), 19)]  # no leg
    records = []
    for n, (body, seconds) in enumerate(bodies):
        envelope = story_event(n, "StreamKeepAliveEvent", body, seconds).envelope()
        records.append(Record("hooks", 0, n, envelope.value, envelope.headers()))
    return records


def generic(model: Model, parts: Sequence[Row | None], key: str) -> dict[str, Row]:
    return {r[key]: r for r in fold(model, [p for p in parts if p is not None])}


async def stored(engine: AsyncEngine, model: Model, table: Any, key: str) -> dict[str, Row]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).mappings()
        return {row[key]: {name: row[name] for name in model.columns} for row in rows}


@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "cached"])
@pytest.mark.parametrize("seed", range(3))
async def test_fast_path_equals_the_generic_fold(
    engine: AsyncEngine, projector_settings: Settings, seed: int, cached: bool
) -> None:
    """``cached``: keep-alives of the same bytes share one decoded body."""
    records = keepalives()
    events = [e for e in map(decode_record, records) if isinstance(e, Event)]
    random.Random(seed).shuffle(records)
    config = ProjectorConfig.from_settings(projector_settings)
    bodies = BodyCache() if cached else None
    for batch in (records[:5], records[5:]):  # two transactions, in a shuffled order
        async with engine.begin() as conn:
            await apply_batch(conn, batch, config, bodies)

    legs = await stored(engine, STREAMS, streams, "media_session_id")
    assert legs == generic(STREAMS, [stream_part(e) for e in events], "media_session_id")
    by_session = await stored(engine, SESSIONS, sessions, "session_id")
    expected = generic(SESSIONS, [session_part(e, ()) for e in events], "session_id")
    assert by_session == expected
    assert set(legs) == {PUB, PLAYER, ORPHAN}
    assert (legs[PUB]["keepalive_count"], legs[PLAYER]["keepalive_count"]) == (5, 6)
    assert (legs[PLAYER]["width"], legs[PLAYER]["status"]) == (640, "PAUSED")
    assert legs[PLAYER]["name"] == sample("StreamKeepAliveEvent")["name"]
    assert len(by_session) == 2
