"""Kafka positions in PostgreSQL: stored with every batch, sought on every assignment.

PostgreSQL's ``projection_positions`` is the source of truth for where the projector
resumes; Kafka's committed offsets are informational only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.decode import RecordLike
from projections.state import ProjectorState
from projections.tables import projection_positions

logger = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

# a partition behind whose row was not written for this long no longer holds back the sweep
BEHIND_FRESH_S = 60.0


def positions_of(records: Iterable[RecordLike]) -> dict[TopicPartitionKey, int]:
    """The next offset to read per partition after ``records``."""
    positions: dict[TopicPartitionKey, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        positions[key] = max(positions.get(key, 0), record.offset + 1)
    return positions


async def save_positions(
    conn: AsyncConnection,
    projection: str,
    positions: Mapping[TopicPartitionKey, int],
    *,
    ends: Mapping[TopicPartitionKey, int] | None = None,
    through: Mapping[TopicPartitionKey, datetime] | None = None,
) -> None:
    """Stores the next offset per partition, with what is known of its end offset (``ends``)
    and the newest receive time applied from it (``through``); none of the three ever moves
    backwards, and an unknown end or time keeps the stored one."""
    if not positions:
        return
    ends, through = ends or {}, through or {}
    rows = [
        {
            "projection": projection,
            "topic": key[0],
            "partition": key[1],
            "next_offset": offset,
            "end_offset": ends.get(key),
            "received_through": through.get(key),
        }
        for key, offset in positions.items()
    ]
    t = projection_positions.c
    stmt = insert(projection_positions)
    stmt = stmt.on_conflict_do_update(
        index_elements=["projection", "topic", "partition"],
        set_={
            # GREATEST ignores NULLs: an unknown value keeps the stored one
            "next_offset": func.greatest(t.next_offset, stmt.excluded.next_offset),
            "end_offset": func.greatest(t.end_offset, stmt.excluded.end_offset),
            "received_through": func.greatest(t.received_through, stmt.excluded.received_through),
            "updated_at": func.now(),
        },
    )
    await conn.execute(stmt, rows)


async def save_ends(
    conn: AsyncConnection, projection: str, ends: Mapping[TopicPartitionKey, int]
) -> None:
    """Stores the end offsets of partitions that have a stored position (a partition new to
    the projection gets its row with its first batch)."""
    if not ends:
        return
    t = projection_positions.c
    stmt = (
        update(projection_positions)
        .where(
            t.projection == bindparam("p_projection"),
            t.topic == bindparam("p_topic"),
            t.partition == bindparam("p_partition"),
        )
        .values(
            end_offset=func.greatest(t.end_offset, bindparam("p_end")),
            updated_at=func.now(),
        )
    )
    rows = [
        {"p_projection": projection, "p_topic": topic, "p_partition": partition, "p_end": end}
        for (topic, partition), end in ends.items()
    ]
    await conn.execute(stmt, rows)


async def behind_through(conn: AsyncConnection, projection: str) -> datetime | None:
    """The oldest ``received_through`` of the partitions of ``projection`` that are behind
    (their end offset is past their next offset) and were written in the last
    :data:`BEHIND_FRESH_S` seconds; None when no partition is.

    Event time has reached at least this far in every partition, so silence measured up to
    it is real silence. A partition whose row nobody wrote for that long is not being read
    (its projector is gone) and no longer holds the others back.
    """
    t = projection_positions.c
    query = select(func.min(t.received_through)).where(
        t.projection == projection,
        t.next_offset < t.end_offset,
        t.updated_at > func.now() - timedelta(seconds=BEHIND_FRESH_S),
    )
    found: datetime | None = (await conn.execute(query)).scalar_one()
    return found


def fetched_ends(consumer: Any, keys: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
    """The end offset of each of ``keys`` that ``consumer`` (aiokafka) holds, as its latest
    fetch saw it (the high watermark); partitions it does not hold or know are left out."""
    held = consumer.assignment()
    ends: dict[TopicPartitionKey, int] = {}
    for key in keys:
        tp = TopicPartition(*key)
        if tp in held and (end := consumer.highwater(tp)) is not None:
            ends[key] = end
    return ends


async def load_positions(
    conn: AsyncConnection, projection: str, topics: Iterable[str]
) -> dict[TopicPartitionKey, int]:
    """The stored next offsets of ``projection`` for ``topics``; empty if none are stored."""
    t = projection_positions.c
    query = select(t.topic, t.partition, t.next_offset).where(
        t.projection == projection, t.topic.in_(list(topics))
    )
    return {(topic, part): offset for topic, part, offset in await conn.execute(query)}


class SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, seeks each partition to its offset stored in PostgreSQL.

    The partitions stay paused until they are positioned, so no record from Kafka's own
    position reaches a batch. A partition without a stored offset starts at the beginning of
    the topic. If PostgreSQL cannot be read the projector is stopped (``state``), and the
    partitions stay paused: it never consumes from Kafka's committed offsets.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        projection: str,
        consumer: Callable[[], Any],
        state: ProjectorState,
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        self._engine = engine
        self._projection = projection
        self._consumer = consumer
        self._state = state
        self._drain = drain

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Disowns ``revoked`` at once (a batch not yet applied drops their records), then
        lets the batch in flight commit: its positions are saved with it, and the next owner
        of these partitions reads them."""
        self._state.disown((tp.topic, tp.partition) for tp in revoked)
        await self._drain()

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        consumer = self._consumer()
        # aiokafka fetches concurrently with this callback: without the pause, records from
        # Kafka's reset position could reach a batch while PostgreSQL is being read.
        consumer.pause(*assigned)
        try:
            async with self._engine.connect() as conn:
                stored = await load_positions(conn, self._projection, {tp.topic for tp in assigned})
        except Exception as error:
            self._state.fail(error)
            logger.exception("projections.positions.unreadable")
            raise
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
            self._state.next_offsets[tp.topic, tp.partition] = offset or 0
        self._state.own((tp.topic, tp.partition) for tp in assigned)
        consumer.resume(*assigned)
        logger.info(
            "projections.partitions.assigned",
            extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)},
        )
        await self._save_ends(consumer, assigned)

    async def _save_ends(self, consumer: Any, assigned: Collection[TopicPartition]) -> None:
        """Stores the end offsets of ``assigned``: after a restart, the sweep then waits for
        this projector to catch up on them before it judges their legs silent. Best effort:
        without it, only an inferred end may show early (the next event clears it)."""
        try:
            ends = await consumer.end_offsets(list(assigned))
            async with self._engine.begin() as conn:
                await save_ends(
                    conn,
                    self._projection,
                    {(tp.topic, tp.partition): end for tp, end in ends.items()},
                )
        except Exception:
            logger.warning("projections.positions.ends_unsaved", exc_info=True)
