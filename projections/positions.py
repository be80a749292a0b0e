"""Kafka positions in PostgreSQL: stored with every batch, sought on every assignment.

PostgreSQL's ``projection_positions`` is the source of truth for where the projector
resumes; Kafka's committed offsets are informational only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.decode import RecordLike
from projections.state import ProjectorState
from projections.tables import projection_positions

logger = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]


def positions_of(records: Iterable[RecordLike]) -> dict[TopicPartitionKey, int]:
    """The next offset to read per partition after ``records``."""
    positions: dict[TopicPartitionKey, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        positions[key] = max(positions.get(key, 0), record.offset + 1)
    return positions


async def save_positions(
    conn: AsyncConnection, projection: str, positions: Mapping[TopicPartitionKey, int]
) -> None:
    """Stores the next offset per partition; a stored position never moves backwards."""
    if not positions:
        return
    rows = [
        {"projection": projection, "topic": topic, "partition": partition, "next_offset": offset}
        for (topic, partition), offset in positions.items()
    ]
    stmt = insert(projection_positions)
    stmt = stmt.on_conflict_do_update(
        index_elements=["projection", "topic", "partition"],
        set_={
            "next_offset": func.greatest(
                projection_positions.c.next_offset, stmt.excluded.next_offset
            ),
            "updated_at": func.now(),
        },
    )
    await conn.execute(stmt, rows)


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
