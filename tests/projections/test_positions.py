"""Positions: next offsets per partition, stored with the batch, never moving backwards; with
each partition's end offset and newest receive time, which say which partitions are behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.positions import (
    SeekToStoredPositions,
    behind_through,
    load_positions,
    positions_of,
    save_positions,
)
from projections.rebuild import topic_partitions
from projections.state import ProjectorState
from tests.projections.story import (
    at,
    end_offsets,
    produce,
    project,
    sample_story,
    table_rows,
)
from wcs_audit.settings import Settings


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def test_positions_of_a_batch_are_the_next_offsets() -> None:
    batch = [Record("t", 0, 5), Record("t", 1, 9), Record("t", 0, 7), Record("u", 0, 0)]
    assert positions_of(batch) == {("t", 0): 8, ("t", 1): 10, ("u", 0): 1}
    assert positions_of([]) == {}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_stored_position_never_moves_backwards(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await save_positions(conn, "p", {("t", 0): 8, ("t", 1): 10})
    async with engine.begin() as conn:  # a late, older batch (e.g. during a rebalance)
        await save_positions(conn, "p", {("t", 0): 5, ("t", 2): 3})
    async with engine.connect() as conn:
        assert await load_positions(conn, "p", {"t"}) == {("t", 0): 8, ("t", 1): 10, ("t", 2): 3}
        assert await load_positions(conn, "other", {"t"}) == {}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_records_deleted_before_they_were_projected_are_logged_and_counted(
    projector_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    story = [e.envelope() for e in sample_story()]
    await produce(projector_settings, story[: len(story) // 2])
    await project(projector_settings)
    before = await end_offsets(projector_settings)
    await produce(projector_settings, story[len(story) // 2 :])
    after = await end_offsets(projector_settings)
    partition = next(p for p in sorted(after) if after[p] - before[p] >= 3)
    cut = TopicPartition(projector_settings.topic, partition)
    admin = AIOKafkaAdminClient(bootstrap_servers=projector_settings.kafka_bootstrap)
    await admin.start()
    try:  # as retention would, while the projector was away
        await admin.delete_records({cut: RecordsToDelete(before[partition] + 2)}, timeout_ms=10_000)
    finally:
        await admin.close()

    with caplog.at_level(logging.ERROR, logger="projections.pipeline"):
        projector = await project(projector_settings)
    [skipped] = [r for r in caplog.records if r.getMessage() == "projections.records.skipped"]
    assert (skipped.partition, skipped.expected_offset, skipped.first_offset, skipped.skipped) == (  # type: ignore[attr-defined]
        partition, before[partition], before[partition] + 2, 2,
    )  # fmt: skip
    counted = projector.metrics.registry.get_sample_value(
        "wcs_audit_projector_records_total", {"outcome": "skipped"}
    )
    assert counted == 2
    stored = table_rows(projector_settings, "hook_events", "kafka_partition, kafka_offset")
    assert len(stored) == len(story) - 2


async def progress_rows(engine: AsyncEngine, projection: str) -> dict[int, tuple[Any, ...]]:
    """partition -> (next_offset, end_offset, received_through) of ``projection``."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT partition, next_offset, end_offset, received_through "
                "FROM projection_positions WHERE projection = :p"
            ),
            {"p": projection},
        )
        return {partition: tuple(rest) for partition, *rest in rows}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_end_offset_and_newest_time_never_move_backwards_and_unknown_keeps_them(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await save_positions(
            conn, "p", {("t", 0): 5, ("t", 1): 2},
            ends={("t", 0): 9, ("t", 1): 2}, through={("t", 0): at(10), ("t", 1): at(7)},
        )  # fmt: skip
    async with engine.begin() as conn:  # no end known now, and an older hook last
        await save_positions(conn, "p", {("t", 0): 9}, through={("t", 0): at(4)})
    async with engine.begin() as conn:  # a later batch of partition 1, ends known
        await save_positions(
            conn, "p", {("t", 1): 4}, ends={("t", 1): 6}, through={("t", 1): at(30)}
        )
    assert await progress_rows(engine, "p") == {0: (9, 9, at(10)), 1: (4, 6, at(30))}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_the_partitions_behind_hold_back_event_time_while_they_are_read(
    engine: AsyncEngine,
) -> None:
    async def floor() -> datetime | None:
        async with engine.connect() as conn:
            return await behind_through(conn, "p")

    assert await floor() is None  # nothing stored
    async with engine.begin() as conn:
        await save_positions(
            conn, "p", {("t", 0): 5, ("t", 1): 8, ("t", 2): 3, ("t", 3): 1},
            ends={("t", 0): 9, ("t", 1): 8, ("t", 2): 7},  # 0 and 2 behind; 3's end unknown
            through={("t", 0): at(50), ("t", 1): at(600), ("t", 2): at(20), ("t", 3): at(5)},
        )  # fmt: skip
        await save_positions(
            conn, "other", {("t", 0): 1}, ends={("t", 0): 9}, through={("t", 0): at(1)}
        )
    assert await floor() == at(20)
    # partition 2 not written for two minutes: its reader is gone
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE projection_positions SET updated_at = now() - interval '2 minutes' "
                "WHERE projection = 'p' AND partition = 2"
            )
        )
    assert await floor() == at(50)
    async with engine.begin() as conn:  # partition 0 caught up
        await save_positions(conn, "p", {("t", 0): 9}, through={("t", 0): at(70)})
    assert await floor() is None


@pytest.mark.kafka
@pytest.mark.postgres
async def test_the_projector_stores_each_partitions_end_and_newest_receive_time(
    projector_settings: Settings, engine: AsyncEngine
) -> None:
    story = sample_story()
    await produce(projector_settings, [e.envelope() for e in story])
    await project(projector_settings)
    ends = await end_offsets(projector_settings)
    events = table_rows(projector_settings, "hook_events", "kafka_partition, kafka_offset")
    newest = {
        p: max(e["received_at"] for e in events if e["kafka_partition"] == p)
        for p, end in ends.items()
        if end > 0
    }
    rows = await progress_rows(engine, projector_settings.projector_group)
    assert rows == {p: (end, end, newest[p]) for p, end in ends.items() if end > 0}


async def nothing_in_flight() -> None:
    """The listener's ``drain`` when no batch is in flight."""


@pytest.mark.kafka
@pytest.mark.postgres
async def test_an_assigned_partition_is_marked_behind_until_it_is_read(
    projector_settings: Settings, engine: AsyncEngine
) -> None:
    # a projector projected the first half, then stopped; the rest arrived while it was away
    story = [e.envelope() for e in sample_story()]
    await produce(projector_settings, story[: len(story) // 2])
    await project(projector_settings)
    before = await progress_rows(engine, projector_settings.projector_group)
    await produce(projector_settings, story[len(story) // 2 :])
    after = await end_offsets(projector_settings)

    tps = await topic_partitions(projector_settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=projector_settings.kafka_bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        listener = SeekToStoredPositions(
            engine, projector_settings.projector_group, lambda: consumer,
            ProjectorState(), drain=nothing_in_flight,
        )  # fmt: skip
        await listener.on_partitions_assigned(tps)
    finally:
        await consumer.stop()
    rows = await progress_rows(engine, projector_settings.projector_group)
    # rows keep their offset and time; only partitions with a stored position get a row
    assert rows == {
        p: (next_offset, after[p], through) for p, (next_offset, _, through) in before.items()
    }
    behind = [p for p, (next_offset, _, _) in before.items() if next_offset < after[p]]
    assert behind, "the second half reaches some partition the first half did"
    async with engine.connect() as conn:
        floor = await behind_through(conn, projector_settings.projector_group)
    assert floor == min(before[p][2] for p in behind)
