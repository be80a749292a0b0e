"""SQL merges against the real PostgreSQL: replays change nothing, silence ends and reopens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.consume import BatchResult, ProjectorConfig, apply_batch
from projections.decode import Event, decode_record
from projections.positions import save_positions
from projections.tables import PROJECTION_TABLES, hook_log, rejected_records, streams
from projections.upsert import insert_events, text_array
from tests.projections.story import ORPHAN, SESSION2, Record, at, sample, story_event
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


LEG = {"sessionId": SESSION2, "mediaSessionId": ORPHAN, "name": "orphan"}


def records(*hooks: tuple[str, dict[str, Any], float], start: int = 0) -> list[Record]:
    out = []
    for n, (hook, body, seconds) in enumerate(hooks, start=start):
        envelope = story_event(n, hook, body, seconds).envelope()
        out.append(Record("hooks", 0, n, envelope.value, envelope.headers()))
    return out


async def apply(engine: AsyncEngine, settings: Settings, batch: Sequence[Record]) -> BatchResult:
    async with engine.begin() as conn:
        return await apply_batch(conn, batch, ProjectorConfig.from_settings(settings))


async def dump(engine: AsyncEngine) -> list[list[dict[str, Any]]]:
    async with engine.connect() as conn:
        return [
            [
                {k: v for k, v in row._mapping.items() if k != "updated_at"}
                for row in await conn.execute(select(t).order_by(*t.primary_key.columns))
            ]
            for t in PROJECTION_TABLES
        ]


async def orphan(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(streams).where(streams.c.media_session_id == ORPHAN))
        ).one()
        return dict(row._mapping)


async def test_applying_a_batch_again_changes_nothing(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    batch = records(
        ("publishStream", sample("publishStream", **LEG), 7),
        ("StreamStatusEvent", sample("StreamStatusEvent", **LEG), 8),
        ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent", **LEG), 18),
        ("CallStatusEvent", sample("CallStatusEvent", status="HOLD"), 20),
        ("CallStatusEvent", sample("CallStatusEvent"), 26),
    )
    first = await apply(engine, projector_settings, batch)
    before = await dump(engine)
    again = await apply(engine, projector_settings, batch)

    assert (first.applied, first.duplicates) == (5, 0)
    assert (again.applied, again.duplicates) == (0, 5)
    assert await dump(engine) == before


async def test_silence_ends_a_stream_and_a_later_event_reopens_it(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    other = {"sessionId": "another-session"}
    await apply(
        engine,
        projector_settings,
        records(
            ("StreamStatusEvent", sample("StreamStatusEvent", **LEG), 8),
            ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent", **LEG), 18),
            ("connect", sample("connect", **other), 49),  # 49 > 18 + 30: the leg is silent
        ),
    )
    closed = await orphan(engine)
    assert (closed["end_status"], closed["ended_at"], closed["end_inferred"]) == (
        "TIMED_OUT",
        at(18),
        True,
    )

    late = ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent", **LEG), 45)
    await apply(engine, projector_settings, records(late, start=10))
    reopened = await orphan(engine)
    assert (reopened["end_status"], reopened["ended_at"], reopened["keepalive_count"]) == (
        None,
        None,
        2,
    )

    unpublished = sample("StreamStatusEvent", status="UNPUBLISHED", **LEG)
    await apply(
        engine, projector_settings, records(("StreamStatusEvent", unpublished, 50), start=20)
    )
    ended = await orphan(engine)
    assert (ended["end_status"], ended["ended_at"], ended["end_inferred"]) == (
        "UNPUBLISHED",
        at(50),
        False,
    )
    assert ended["duration_s"] == 42  # PUBLISHING at 8


async def test_undecodable_records_are_kept_as_rejects(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    (good,) = records(("connect", sample("connect"), 0))
    broken = Record("hooks", 0, 1, b"{not json", good.headers)
    result = await apply(engine, projector_settings, [good, broken])

    assert (result.applied, result.rejected, result.positions) == (1, 1, {("hooks", 0): 2})
    async with engine.connect() as conn:
        (reject,) = (await conn.execute(select(rejected_records))).all()
    assert (reject.offset, reject.value) == (1, b"{not json")
    assert reject.error.startswith("value is not JSON")
    assert reject.headers["hook"] == "connect"


async def test_an_event_stored_meanwhile_is_skipped_not_an_error(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    """Two consumers may apply one partition during a rebalance: the second skips the ids the
    first stored (the COPY fails on the key, the fallback insert skips conflicts)."""
    story = [story_event(n, "connect", sample("connect", sessionId=f"s{n}"), n) for n in range(3)]
    events = [decode_event(e) for e in story]
    async with engine.begin() as conn:
        assert await insert_events(conn, events[:1], ()) == {story[0].event_id}
    async with engine.begin() as conn:
        inserted = await insert_events(conn, events, ())
        await save_positions(conn, "p", {("hooks", 0): 3})  # the transaction is still usable
    assert inserted == {story[1].event_id, story[2].event_id}
    async with engine.connect() as conn:
        stored = (await conn.execute(select(hook_log.c.event_id))).scalars().all()
    assert sorted(stored) == sorted(e.event_id for e in story)


async def test_a_copy_within_the_window_is_a_suspected_retry_with_or_without_a_session(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    """Each hook is applied in a batch of its own, so its copies are found in the table:
    through the session's hooks, or for a body without a session through its hash alone."""
    assert projector_settings.projector_retry_window_s == 5.0
    keepalive = sample("StreamKeepAliveEvent")
    other_session = sample("StreamKeepAliveEvent", sessionId=SESSION2)
    sessionless = sample("StreamKeepAliveEvent", sessionId=None)
    hooks = [
        (keepalive, 0.0),  # the original
        (keepalive, 2.0),  # a retry
        (keepalive, 20.0),  # the next interval's keep-alive
        (other_session, 21.0),  # another session's: another body
        (sessionless, 30.0),
        (sessionless, 34.5),  # a retry
        (sessionless, 50.0),
    ]
    retries = []
    for n, (body, seconds) in enumerate(hooks):
        batch = records(("StreamKeepAliveEvent", body, seconds), start=n)
        retries.append((await apply(engine, projector_settings, batch)).retries)
    assert retries == [0, 1, 0, 0, 0, 1, 0]
    async with engine.connect() as conn:
        marked = await conn.execute(
            select(hook_log.c.suspected_retry).order_by(hook_log.c.received_at)
        )
    assert marked.scalars().all() == [False, True, False, False, False, True, False]


async def test_text_array_reaches_postgresql_unchanged(engine: AsyncEngine) -> None:
    values = ["/10.0.0.1:5000/10.0.0.2:8443", 'a,b "c" \\d {e} NULL', "", None, "NULL"]
    async with engine.connect() as conn:
        stored = await conn.execute(text("SELECT CAST(:a AS text[])"), {"a": text_array(values)})
    assert stored.scalar_one() == values


def decode_event(event: Any) -> Event:
    envelope = event.envelope()
    decoded = decode_record(Record("hooks", 0, 0, envelope.value, envelope.headers()))
    assert isinstance(decoded, Event)
    return decoded


async def test_odd_bodies_are_stored_not_fatal(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    odd = sample("StreamStatusEvent", name="bad\u0000name", width=2**40, createDate=10**20)
    result = await apply(engine, projector_settings, records(("StreamStatusEvent", odd, 1)))
    assert (result.applied, result.rejected) == (1, 0)
    async with engine.connect() as conn:
        (row,) = (await conn.execute(select(streams))).all()
    assert (row.name, row.width, row.created_at) == ("bad\ufffdname", None, None)
