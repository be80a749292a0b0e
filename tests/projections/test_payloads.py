"""Each distinct body once in ``hook_payloads``; ``hook_events`` shows every hook's body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.consume import BatchResult, ProjectorConfig, apply_batch
from projections.decode import Event, JsonDocument, decode_record, payload_id_of
from projections.payloads import StoredPayloads, insert_payloads
from tests.projections.story import ORPHAN, SESSION2, Record, sample, story_event
from wcs_audit.settings import Settings

LEG = {"sessionId": SESSION2, "mediaSessionId": ORPHAN, "name": "orphan"}
KEEPALIVE = sample("StreamKeepAliveEvent", **LEG)


def records(hooks: list[tuple[str, dict[str, Any]]], start: int) -> list[Record]:
    """Records of ``hooks``, 10 s apart (so no repeated body is a suspected retry)."""
    out = []
    for n, (hook, body) in enumerate(hooks, start=start):
        envelope = story_event(n, hook, body, 10.0 * n).envelope()
        out.append(Record("hooks", 0, n, envelope.value, envelope.headers()))
    return out


def first_batch() -> list[Record]:
    return records(
        [
            ("publishStream", sample("publishStream", **LEG)),
            ("StreamStatusEvent", sample("StreamStatusEvent", **LEG)),
            *[("StreamKeepAliveEvent", KEEPALIVE)] * 4,
        ],
        start=0,
    )


def second_batch() -> list[Record]:
    return records(
        [("StreamKeepAliveEvent", KEEPALIVE)] * 3
        + [("unPublishStream", sample("unPublishStream", **LEG))],
        start=6,
    )


async def apply(
    engine: AsyncEngine, settings: Settings, batch: list[Record], payloads: StoredPayloads
) -> BatchResult:
    """Applies ``batch`` and remembers its payloads once committed, as the projector does."""
    async with engine.begin() as conn:
        result = await apply_batch(
            conn, batch, ProjectorConfig.from_settings(settings), payloads=payloads
        )
    payloads.remember(result.payload_ids)
    return result


async def stored(engine: AsyncEngine) -> tuple[list[tuple[Any, ...]], int]:
    """Every hook's offset and body as ``hook_events`` shows them, and how many bodies
    ``hook_payloads`` holds."""
    async with engine.connect() as conn:
        shown = await conn.execute(text("SELECT kafka_offset, payload FROM hook_events ORDER BY 1"))
        count = await conn.execute(text("SELECT count(*) FROM hook_payloads"))
        return [tuple(row) for row in shown], count.scalar_one()


def bodies_of(batch: list[Record]) -> list[tuple[int, Any]]:
    """Each record's offset and body as the projector stores it (secrets redacted)."""
    events = [e for e in map(decode_record, batch) if isinstance(e, Event)]
    assert len(events) == len(batch)
    return [(e.offset, json.loads(e.payload)) for e in events]


def test_unknown_gives_each_new_payload_once() -> None:
    events = [e for e in map(decode_record, first_batch()) if isinstance(e, Event)]
    payloads = StoredPayloads()
    unknown = payloads.unknown(events)
    assert len(events) == 6
    # publishStream's, and the leg's: its status event and keep-alives carry the same body
    assert len(unknown) == 2
    assert all(payload_id_of(text) == key for key, text in unknown.items())
    payloads.remember(unknown)
    assert payloads.unknown(events) == {}


def test_a_full_memory_forgets_the_bodies_not_in_use() -> None:
    events = [e for e in map(decode_record, first_batch()) if isinstance(e, Event)]
    publish, leg = events[0].payload_id, events[1].payload_id
    payloads = StoredPayloads(limit=2)
    payloads.remember([publish, leg])
    payloads.remember([b"other"])  # full: the recent generation becomes the older one
    assert payloads.unknown(events[1:]) == {}  # the leg's body, in use: moved back
    payloads.remember([b"a third"])  # full again: the older generation is forgotten
    assert set(payloads.unknown(events)) == {publish}


@pytest.mark.postgres
async def test_insert_payloads_skips_the_stored_ones(engine: AsyncEngine) -> None:
    texts = [JsonDocument(t) for t in (b'{"a": 1}', b'{"b": [2, "x\\n"]}', b'{"c": null}')]
    first = {payload_id_of(t): t for t in texts[:2]}
    both = {payload_id_of(t): t for t in texts}
    async with engine.begin() as conn:
        await insert_payloads(conn, first)
    async with engine.begin() as conn:
        await insert_payloads(conn, both)  # two stored already
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT payload_id, payload FROM hook_payloads"))
        assert dict(rows.all()) == {key: json.loads(t) for key, t in both.items()}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_repeated_body_is_stored_once_and_shown_with_every_hook(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    payloads = StoredPayloads()
    one, two = first_batch(), second_batch()
    first = await apply(engine, projector_settings, one, payloads)
    second = await apply(engine, projector_settings, two, payloads)

    assert len(first.payload_ids) == 2
    unpublished = decode_record(two[-1])
    assert isinstance(unpublished, Event)
    assert second.payload_ids == [unpublished.payload_id]  # the keep-alives' body is known
    assert (first.applied, second.applied) == (6, 4)
    assert await stored(engine) == (bodies_of(one + two), 3)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_payloads_of_a_rolled_back_batch_are_written_again(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    """Only committed payloads are taken as stored: a batch that rolled back and is applied
    again stores its bodies again, and every hook keeps its body."""
    payloads = StoredPayloads()
    config = ProjectorConfig.from_settings(projector_settings)
    batch = first_batch()
    async with engine.connect() as conn:
        transaction = await conn.begin()
        result = await apply_batch(conn, batch, config, payloads=payloads)
        await transaction.rollback()
    assert len(result.payload_ids) == 2
    assert await stored(engine) == ([], 0)

    await apply(engine, projector_settings, batch, payloads)
    assert await stored(engine) == (bodies_of(batch), 2)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_restarted_projector_finds_its_bodies_stored(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    """A projector that knows nothing (restarted, or a second one) skips what is stored."""
    one, two = first_batch(), second_batch()
    await apply(engine, projector_settings, one, StoredPayloads())
    second = await apply(engine, projector_settings, two, StoredPayloads())
    assert len(second.payload_ids) == 2  # sent, and the stored keep-alive body skipped
    assert await stored(engine) == (bodies_of(one + two), 3)
