"""The batch handler: batch N+1 is decoded while batch N's transaction runs in PostgreSQL.

Decoding is Python work and applying is mostly PostgreSQL's, on the other core; doing them one
after the other left each side idle half the time. Batches are still applied one at a time
and in order, each in its own transaction with its positions, so nothing about exactly-once
changes. FastStream acknowledges a batch when the handler returns, which may be before its
transaction commits; that is harmless because Kafka's committed offsets are informational:
the positions in PostgreSQL decide where consumption resumes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.consume import (
    BatchResult,
    PreparedBatch,
    ProjectorConfig,
    apply_prepared,
    assemble_batch,
    close_silent_at,
)
from projections.decode import BodyCache, Event, RecordLike, Rejected, decode_record
from projections.metrics import ProjectorMetrics
from projections.payloads import StoredPayloads
from projections.positions import TopicPartitionKey
from projections.state import ProjectorState, ProjectorStoppedError
from projections.upsert import watermark

logger = logging.getLogger(__name__)

PARTITION_OF = operator.attrgetter("topic", "partition")

Fault = Callable[[str, BatchResult], Awaitable[None]]
# the end offsets of the given partitions, as far as the consumer knows them
EndsOf = Callable[[Iterable[TopicPartitionKey]], dict[TopicPartitionKey, int]]
# records decoded between two turns of the event loop: small, so each statement of the batch
# in flight is sent within about a millisecond of the previous one's answer
DECODE_STEP = 25
# least time between two batches that end silent rows (see BatchPipeline)
CLOSE_EVERY_S = 1.0


async def prepare_stepwise(
    records: Sequence[RecordLike],
    config: ProjectorConfig,
    bodies: BodyCache | None = None,
    step: int = DECODE_STEP,
) -> PreparedBatch:
    """``prepare_batch``, yielding to the event loop every ``step`` records so the batch
    in flight can send its next statement meanwhile."""
    decoded: list[Event | Rejected] = []
    for start in range(0, len(records), step):
        decoded.extend(
            decode_record(r, config.secrets, bodies) for r in records[start : start + step]
        )
        await asyncio.sleep(0)
    return assemble_batch(records, decoded, config)


class EventClock:
    """Event time now, estimated: the latest receive time stored plus the time elapsed since
    it was stored. While the projector catches up, this stays at the events it applies; once
    it is caught up and nothing arrives, it moves with the clock, so silence is measured even
    when no event at all comes (a node that died, a quiet night)."""

    def __init__(self) -> None:
        self.anchor: tuple[datetime, float] | None = None

    def observe(self, watermark: datetime | None) -> None:
        """Records that ``watermark`` is the latest receive time stored, as of now."""
        if watermark is not None:
            self.anchor = (watermark, time.monotonic())

    def now(self) -> datetime | None:
        """The estimate; None before anything was observed."""
        if self.anchor is None:
            return None
        watermark, since = self.anchor
        return watermark + timedelta(seconds=time.monotonic() - since)


class BatchPipeline:
    """Applies prepared batches one at a time, in order, each in one transaction.

    After a failure it refuses every later batch (``ProjectorStoppedError``, so nothing is
    applied out of order) and sets ``state.stopped`` so the process exits; on restart,
    consumption resumes from the positions in PostgreSQL. A batch ends the rows silent at its
    watermark only if no batch did in the last :data:`CLOSE_EVERY_S` (that scan of every open
    leg cost a quarter of a batch's time in PostgreSQL while catching up). ``fault`` is
    awaited at ``"written"`` (rows written, transaction open) and ``"committed"``
    (PostgreSQL committed): tests crash the projector there. Between batches, :meth:`sweep`
    ends what has been silent too long by :class:`EventClock`. ``ends_of`` gives the end
    offsets stored with each batch's positions, which tell the sweeps of every projector of
    the group which partitions are behind.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        config: ProjectorConfig,
        metrics: ProjectorMetrics,
        state: ProjectorState,
        *,
        fault: Fault | None = None,
        interval_s: float = 0.0,
        ends_of: EndsOf | None = None,
    ) -> None:
        self._engine = engine
        self._ends_of = ends_of
        self._interval_s = interval_s
        self._config = config
        self._metrics = metrics
        self._state = state
        self._fault = fault
        self._in_flight: asyncio.Task[None] | None = None
        self._bodies = BodyCache()
        self._payloads = StoredPayloads()
        self._writing = asyncio.Lock()  # one transaction at a time: a batch or a sweep
        self._closed_at = float("-inf")  # when a batch last ended silent rows
        self._unclosed = False  # a batch was applied since
        self.clock = EventClock()

    async def handle(self, message: KafkaMessage) -> None:
        """The FastStream batch handler: decodes, waits for the previous batch, starts this
        one's transaction and returns, at the earliest ``interval_s`` after it was called.

        A transaction costs milliseconds of CPU however few records it holds, and a fetch returns
        whatever arrived since the last one: without the interval, a projector at a moderate
        rate spent more CPU per event than one at full speed (515 against 128 µs measured),
        CPU the receiver and Kafka on the same machine lack. The wait overlaps the batch's
        own transaction, so it adds nothing once transactions take longer.
        """
        self._refuse_if_stopped()
        records: Sequence[RecordLike] = message.raw_message
        started = time.perf_counter()
        try:
            batch = await prepare_stepwise(records, self._config, self._bodies)
        except BaseException as error:
            self._fail(error, len(records))
            raise
        await self.drain()
        self._refuse_if_stopped()
        owned = self._state.owned
        if owned is not None and not owned.issuperset(batch.positions):
            # fetched before a rebalance took some of its partitions: their new owner applies
            # those records from the stored positions, concurrently; applying them here too
            # made the two transactions deadlock on the same rows
            kept = [r for r in records if (r.topic, r.partition) in owned]
            logger.info(
                "projections.batch.disowned",
                extra={"records": len(records) - len(kept), "kept": len(kept)},
            )
            if not kept:
                return
            records = kept
            batch = await prepare_stepwise(records, self._config, self._bodies)
        self._count_skipped(records, batch.positions)
        ends = self._ends_of(batch.positions) if self._ends_of is not None else None
        self._in_flight = asyncio.create_task(self._apply(batch, started, ends))
        pause = started + self._interval_s - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)

    def _count_skipped(
        self, records: Sequence[RecordLike], positions: Mapping[tuple[str, int], int]
    ) -> None:
        """Logs and counts (``records{outcome="skipped"}``) the records a batch jumps over:
        when a partition's first record comes after the offset expected next, Kafka no
        longer held the ones between (retention deleted them before they were projected, and
        the consumer went on from the oldest record left). Then expects ``positions``."""
        expected = self._state.next_offsets
        checked: set[tuple[str, int]] = set()
        # a fetch lists each partition's records together: one step per run, in C
        for key, run in itertools.groupby(records, key=PARTITION_OF):
            if key in checked:
                continue
            checked.add(key)
            record = next(run)
            want = expected.get(key)
            if want is not None and record.offset > want:
                logger.error(
                    "projections.records.skipped",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "expected_offset": want,
                        "first_offset": record.offset,
                        "skipped": record.offset - want,
                    },
                )
                self._metrics.records.labels("skipped").inc(record.offset - want)
        expected.update(positions)

    async def drain(self) -> None:
        """Returns once the batch in flight, if any, has committed or failed (never raises:
        a failure is in ``state``). Call before a rebalance gives partitions away and
        before the engine is closed."""
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
            self._in_flight = None

    def _refuse_if_stopped(self) -> None:
        if self._state.error is not None:
            raise ProjectorStoppedError("projector stopped after a failed batch")

    def _fail(self, error: BaseException, records: int) -> None:
        self._state.fail(error)
        logger.error("projections.batch.failed", exc_info=error, extra={"records": records})

    async def sweep(self) -> None:
        """Ends the streams and sessions silent too long at :class:`EventClock`'s now, in a
        transaction of its own between batches (the first sweep reads the watermark)."""
        await self._end_silent(self._clock_now)

    async def finish(self) -> None:
        """Ends what is silent at the watermark if batches were applied since the last batch
        that did (call once consumption stopped and :meth:`drain` returned): the rows are
        then what ending them in every batch would have left, as a rebuild leaves them."""
        if not self._unclosed or self._state.error is not None:
            return
        await self._end_silent(watermark)
        self._unclosed = False

    async def _clock_now(self, conn: AsyncConnection) -> datetime | None:
        if self.clock.anchor is None:
            self.clock.observe(await watermark(conn))
        return self.clock.now()

    async def _end_silent(
        self, now_of: Callable[[AsyncConnection], Awaitable[datetime | None]]
    ) -> None:
        """Ends what is silent at ``now_of``'s time, in a transaction of its own."""
        async with self._writing, self._engine.begin() as conn:
            now = await now_of(conn)
            if now is not None:
                await close_silent_at(conn, now, self._config)

    async def sweep_every(self, interval_s: float) -> None:
        """Sweeps every ``interval_s`` until cancelled; a failed sweep is logged and retried
        at the next tick (a batch that cannot write stops the projector anyway)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except Exception:
                logger.exception("projections.sweep.failed")

    async def _apply(
        self,
        batch: PreparedBatch,
        started: float,
        ends: Mapping[TopicPartitionKey, int] | None,
    ) -> None:
        try:
            async with self._writing:
                async with self._engine.begin() as conn:
                    close = time.monotonic() - self._closed_at >= CLOSE_EVERY_S
                    result = await apply_prepared(
                        conn, batch, self._config, payloads=self._payloads, close=close, ends=ends
                    )
                    if self._fault is not None:
                        await self._fault("written", result)
                self._payloads.remember(result.payload_ids)
                self.clock.observe(result.watermark)
                self._unclosed = not close
                if close:
                    self._closed_at = time.monotonic()
            if self._fault is not None:
                await self._fault("committed", result)
        except BaseException as error:  # kept in state; the process stops
            self._fail(error, batch.records)
            return
        self._metrics.observe_batch(
            result, time.perf_counter() - started, batch.oldest_received_at()
        )
        logger.info(
            "projections.batch.applied",
            extra={
                "records": result.records,
                "applied": result.applied,
                "retries": result.retries,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
            },
        )
