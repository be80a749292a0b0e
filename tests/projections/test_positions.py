"""Positions: next offsets per partition, stored with the batch, never moving backwards."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.positions import load_positions, positions_of, save_positions
from tests.projections.story import end_offsets, produce, project, sample_story, table_rows
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
