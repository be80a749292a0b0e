"""Rebuild: recompute every projection from the start of the topic into fresh tables, swap in.

The fresh tables live in schema ``wcs_rebuild`` (same DDL: ``CREATE TABLE … (LIKE …
INCLUDING ALL)``) and are filled by the projector's own :func:`apply_batch`, so the result is
row for row what the live projector builds. The swap replaces the contents of the live tables
in one transaction (views keep pointing at the same tables). A rebuild and a live projector
exclude each other (``projections.guard``): stop the projector first; it resumes from the
swapped-in positions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from projections.consume import ProjectorConfig, apply_batch, session_options
from projections.decode import BodyCache
from projections.guard import projections_lock
from projections.payloads import StoredPayloads
from projections.progress import Progress, ProgressSink
from projections.tables import PROJECTION_TABLES
from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)

SCHEMA = "wcs_rebuild"


def stored_columns(table: Table) -> list[str]:
    """Quoted names of the columns a row stores (generated columns are recomputed)."""
    return [f'"{c.name}"' for c in table.columns if c.computed is None]


async def create_fresh_tables(conn: AsyncConnection) -> None:
    """(Re)creates schema ``wcs_rebuild`` with empty copies of every projection table."""
    await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    for table in PROJECTION_TABLES:
        storage = table.dialect_options["postgresql"]["with"] or {}
        options = ", ".join(f"{name} = {value}" for name, value in storage.items())
        await conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.{table.name} (LIKE public.{table.name} INCLUDING ALL)"
                + (f" WITH ({options})" if options else "")
            )
        )


async def swap_in(conn: AsyncConnection) -> None:
    """Replaces the live tables' rows with the rebuilt ones and drops the rebuild schema."""
    names = ", ".join(f"public.{t.name}" for t in PROJECTION_TABLES)
    await conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
    await conn.execute(text(f"TRUNCATE {names}"))
    for table in PROJECTION_TABLES:
        columns = ", ".join(stored_columns(table))
        await conn.execute(
            text(
                f"INSERT INTO public.{table.name} ({columns}) "  # noqa: S608
                f"SELECT {columns} FROM {SCHEMA}.{table.name}"
            )
        )
    await conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


async def topic_partitions(settings: Settings) -> list[TopicPartition]:
    """The partitions of ``settings.topic`` (asks the cluster; raises if it has none)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        partitions = await producer.partitions_for(settings.topic)
    finally:
        await producer.stop()
    if not partitions:
        raise RuntimeError(f"topic {settings.topic!r} has no partitions")
    return [TopicPartition(settings.topic, p) for p in sorted(partitions)]


async def replay(
    consumer: AIOKafkaConsumer,
    engine: AsyncEngine,
    config: ProjectorConfig,
    ends: Mapping[TopicPartition, int],
    *,
    total: int,
    batch_size: int,
    progress: ProgressSink,
) -> int:
    """Applies every record from the consumer's positions to ``ends`` (``total`` records)
    in batches; returns how many it applied."""
    applied, started = 0, time.perf_counter()
    bodies, payloads = BodyCache(), StoredPayloads()
    remaining = {tp for tp, end in ends.items() if end > 0}
    known_ends = {(tp.topic, tp.partition): end for tp, end in ends.items()}
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
        records = [r for tp, rs in fetched.items() for r in rs if r.offset < ends[tp]]
        if records:
            async with engine.begin() as conn:
                result = await apply_batch(
                    conn, records, config, bodies, ends=known_ends, payloads=payloads
                )
            payloads.remember(result.payload_ids)
            applied += len(records)
            progress(Progress(applied, total, time.perf_counter() - started))
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    return applied


class TruncatedTopicError(Exception):
    """The topic no longer holds its first records: a rebuild would lose what they built."""


def check_complete(beginnings: Mapping[TopicPartition, int]) -> None:
    """Raises :class:`TruncatedTopicError` when a partition no longer starts at offset 0."""
    cut = {tp: offset for tp, offset in beginnings.items() if offset > 0}
    if cut:
        tp, offset = min(cut.items())
        raise TruncatedTopicError(
            f"topic {tp.topic!r} no longer holds its first records (partition {tp.partition} "
            f"starts at offset {offset}; {len(cut)} of {len(beginnings)} partitions are cut): "
            "Kafka's retention deleted them, and a rebuild would drop the rows they built. "
            "Keep the audit log with retention.ms=-1 (WCS_AUDIT_TOPIC_RETENTION_MS), or "
            "rebuild from what is left with --allow-truncated"
        )


async def rebuild_with(
    consumer: AIOKafkaConsumer,
    live: AsyncEngine,
    fresh: AsyncEngine,
    settings: Settings,
    progress: ProgressSink,
    *,
    allow_truncated: bool = False,
) -> tuple[int, int]:
    """Replays the topic into fresh tables and swaps them in; returns the records applied
    and the records the topic held. Raises :class:`TruncatedTopicError` (before anything is
    written) when the topic lost its first records, unless ``allow_truncated``."""
    tps = await topic_partitions(settings)
    consumer.assign(tps)
    beginnings = await consumer.beginning_offsets(tps)
    if not allow_truncated:
        check_complete(beginnings)
    async with live.begin() as conn:
        await create_fresh_tables(conn)
    ends = await consumer.end_offsets(tps)
    await consumer.seek_to_beginning(*tps)
    total = sum(ends[tp] - beginnings[tp] for tp in tps)
    applied = await replay(
        consumer,
        fresh,
        ProjectorConfig.from_settings(settings),
        ends,
        total=total,
        batch_size=settings.projector_batch_size,
        progress=progress,
    )
    async with live.begin() as conn:
        await swap_in(conn)
    return applied, total


async def rebuild(
    settings: Settings, progress: ProgressSink, *, allow_truncated: bool = False
) -> Progress:
    """Rebuilds all projections from offset 0 of ``settings.topic`` and swaps them in.

    Blocks until done; raises ``ProjectionsBusyError`` at once while a live projector runs,
    :class:`TruncatedTopicError` when retention deleted the topic's first records (unless
    ``allow_truncated``: then it rebuilds from the first record left), and any Kafka or
    database error (the live tables are then untouched and ``wcs_rebuild`` is left for
    inspection).
    """
    started = time.perf_counter()
    live = create_async_engine(settings.database_url)
    fresh = create_async_engine(  # its async commits are flushed by the swap's own commit
        settings.database_url,
        connect_args={"options": f"-c search_path={SCHEMA} {session_options(settings)}"},
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        async with projections_lock(live, exclusive=True):
            await consumer.start()
            applied, total = await rebuild_with(
                consumer, live, fresh, settings, progress, allow_truncated=allow_truncated
            )
    finally:
        await consumer.stop()
        await fresh.dispose()
        await live.dispose()
    result = Progress(applied, total, time.perf_counter() - started)
    logger.info("projections.rebuild.swapped", extra={"records": applied})
    return result
