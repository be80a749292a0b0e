"""Binary COPY: the hook_log fast path gives the generic rows, and values round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.decode import Event, JsonDocument, decode_record, payload_id_of
from projections.rows import event_row
from projections.stage import EVENT_COLUMNS, LOG_COLUMNS, copy_rows, event_rows, stage_rows
from projections.tables import hook_log, sessions
from tests.projections.story import Record, sample_story


def story_events() -> list[Event]:
    events = []
    for n, story_event in enumerate(sample_story()):
        envelope = story_event.envelope()
        event = decode_record(Record("t", 1, n, envelope.value, envelope.headers()))
        assert isinstance(event, Event)
        events.append(event)
    return events


def test_event_rows_equal_the_generic_rows() -> None:
    events = story_events()
    retries = {events[3].event_id}
    generic = [event_row(e, e.event_id in retries) for e in events]
    assert event_rows(events, retries) == [tuple(r[n] for n in EVENT_COLUMNS) for r in generic]
    assert set(EVENT_COLUMNS) == {c.name for c in hook_log.columns}
    assert json.loads(events[0].payload)["sipPassword"] == "[REDACTED]"


@pytest.mark.postgres
async def test_events_round_trip_through_binary_copy(engine: AsyncEngine) -> None:
    events = story_events()
    async with engine.begin() as conn:
        await copy_rows(conn, "hook_log", LOG_COLUMNS, event_rows(events, {events[3].event_id}))
    async with engine.connect() as conn:
        stored = {r.event_id: r for r in await conn.execute(select(hook_log))}
    assert len(stored) == len(events)
    for event in events:
        row = stored[event.event_id]
        assert row.payload_id == payload_id_of(event.payload)
        assert (row.received_at, row.hook, row.kafka_offset) == (
            event.received_at,
            event.hook,
            event.offset,
        )
        assert row.suspected_retry == (event.event_id == events[3].event_id)


@pytest.mark.postgres
async def test_staged_rows_keep_every_type(engine: AsyncEngine) -> None:
    """Text with COPY's special characters, arrays, JSON values and JSON text, times, UUIDs."""
    at = datetime(2024, 7, 1, 12, 0, 0, 1, tzinfo=UTC)
    row = {
        "node_id": "n\t1\\",
        "session_id": "s\n1",
        "media_providers": ["WebRTC", 'a"b', "c\\d", "e,f"],
        "custom": {"a": "x\ny", "n": [1, 2.5, None, True]},
        "client_version": None,
        "status_at": at,
        "status_event": UUID(int=7),
        "status_rank": 1,
    }
    text_row = row | {"session_id": "s2", "custom": JsonDocument(b'{"k": "v\\r\\n"}')}
    async with engine.begin() as conn:
        stage = await stage_rows(conn, sessions, [row, text_row])
        staged = [dict(r._mapping) for r in await conn.execute(select(stage))]
    assert staged[0] == row
    assert staged[1] == text_row | {"custom": {"k": "v\r\n"}}
