"""A rebuild from offset 0 gives, row for row, the tables the live projector built."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from sqlalchemy import create_engine, select
from sqlalchemy.ext.asyncio import create_async_engine

from projections.app import create_app
from projections.guard import ProjectionsBusyError, projections_lock
from projections.progress import Progress
from projections.rebuild import TruncatedTopicError, rebuild
from projections.tables import PROJECTION_TABLES
from tests.projections.story import produce, project, sample_story, shuffled_with_retries
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def snapshot(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every projection table's rows in primary-key order (without bookkeeping times)."""
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    {k: v for k, v in row._mapping.items() if k != "updated_at"}
                    for row in conn.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in PROJECTION_TABLES
            }
    finally:
        engine.dispose()


async def test_rebuild_equals_live(projector_settings: Settings) -> None:
    settings = projector_settings.replace(projector_batch_size=9)
    story = shuffled_with_retries(sample_story(), seed=3)
    await produce(settings, [e.envelope() for e in story])
    await project(settings)
    live = snapshot(settings)
    assert len(live["hook_log"]) == 124
    assert len(live["streams"]) == 4

    seen: list[Progress] = []
    result = await rebuild(settings.replace(projector_batch_size=31), seen.append)

    assert (result.done, result.total) == (124, 124)
    assert [p.done for p in seen] == [31, 62, 93, 124]
    assert snapshot(settings) == live


async def test_a_rebuild_and_a_live_projector_exclude_each_other(
    projector_settings: Settings,
) -> None:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    projector = create_app(projector_settings)
    await projector.start()
    try:
        with pytest.raises(ProjectionsBusyError, match="a live projector is running"):
            await rebuild(projector_settings, lambda _: None)
    finally:
        await projector.stop()

    engine = create_async_engine(projector_settings.database_url)
    late = create_app(projector_settings)
    try:
        async with projections_lock(engine, exclusive=True):  # as a rebuild holds it
            with pytest.raises(ProjectionsBusyError, match="a rebuild is running"):
                await late.start()
    finally:
        await late.stop()
        await engine.dispose()
    result = await rebuild(projector_settings, lambda _: None)  # nobody holds it now
    assert result.done == result.total > 0


async def test_a_rebuild_refuses_a_topic_whose_first_records_are_gone(
    projector_settings: Settings,
) -> None:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    await project(projector_settings)
    live = snapshot(projector_settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=projector_settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(projector_settings.topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    cut = next(tp for tp in partitions if ends[tp] >= 2)  # the story's sessions are on few
    admin = AIOKafkaAdminClient(bootstrap_servers=projector_settings.kafka_bootstrap)
    await admin.start()
    try:  # as retention would: the partition loses its first two records
        await admin.delete_records({cut: RecordsToDelete(before_offset=2)}, timeout_ms=10_000)
    finally:
        await admin.close()

    with pytest.raises(TruncatedTopicError, match=f"partition {cut.partition} starts at offset 2"):
        await rebuild(projector_settings, lambda _: None)
    assert snapshot(projector_settings) == live  # nothing written, nothing swapped

    result = await rebuild(projector_settings, lambda _: None, allow_truncated=True)
    assert result.done == result.total == len(live["hook_log"]) - 2
    assert len(snapshot(projector_settings)["hook_log"]) == len(live["hook_log"]) - 2
