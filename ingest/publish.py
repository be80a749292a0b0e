"""Appends records to Kafka, or to the local spool while Kafka is away; drains the spool back.

The promise behind a 200: the record is acknowledged by Kafka (``acks=all``, idempotent
producer) or fsync'd in the spool. Two modes:

- **direct**: records go to Kafka; a record Kafka does not acknowledge within the produce
  timeout goes to the spool instead, and the publisher switches to spooling.
- **spooling**: every record goes to the spool (so records keep their order behind older
  spooled ones); the drainer sends the spool to Kafka in order and switches back to direct
  once it is empty.

The idempotent producer never gives up on a batch it has queued, so a record that timed out is
still delivered when Kafka returns. The drainer therefore waits for that original delivery
rather than sending the spooled copy again: nothing is written twice. Only a process that dies
with such records in flight can leave a duplicate (same ``event-id``), which consumers drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)

from ingest.batching import TIMED_OUT, Batch, Batcher
from ingest.metrics import IngestMetrics
from ingest.spool import Spool, SpooledRecord

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500
RETRY_S = 1.0


class PublishRejected(Exception):
    """Kafka refused the record for good (too large, not authorised): not worth spooling."""


class Publisher:
    """Owns the producer's use and the spool's drain; build one per process, in its loop."""

    def __init__(
        self,
        make_producer: Callable[[], AIOKafkaProducer],
        spool: Spool,
        metrics: IngestMetrics,
        *,
        timeout_s: float,
        interval_s: float,
        prepare: Callable[[], Awaitable[Sequence[str]]],
    ) -> None:
        self.make_producer = make_producer
        self.spool = spool
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.interval_s = interval_s  # least time between two produce rounds
        self.prepare = prepare  # creates missing topics, returns the topic names
        self.batcher: Batcher | None = None
        self.direct = False  # until connect() succeeds with an empty spool
        self._in_flight: dict[bytes, asyncio.Future[Any]] = {}  # event-id -> batch fate
        self._wake = asyncio.Event()

    async def connect(self) -> bool:
        """Creates the topics if missing and starts a producer; True on success.

        On failure the publisher spools, and the drainer calls this again until it succeeds.
        """
        if self.batcher is not None:
            return True
        producer = self.make_producer()
        try:
            topics = await asyncio.wait_for(self.prepare(), self.timeout_s * 2)
            await asyncio.wait_for(producer.start(), self.timeout_s * 2)
            partitions = {t: len(await producer.partitions_for(t)) for t in topics}
        except (KafkaError, OSError, TimeoutError) as error:
            with contextlib.suppress(Exception):
                await producer.stop()
            logger.warning("ingest.kafka.connect_failed", extra={"error": repr(error)})
            self._enter_spooling("cannot connect")
            return False
        self.batcher = Batcher(
            producer,
            partitions,
            timeout_s=self.timeout_s,
            interval_s=self.interval_s,
            observe=self.metrics.produce_seconds.observe,
        )
        if self.spool.depth == 0:
            self._leave_spooling()
        return True

    def send(self, record: SpooledRecord) -> Batch | None:
        """Queues ``record`` for Kafka while records go straight there: the batch it joined,
        whose ``answer`` tells its fate (see :meth:`fall_back` when it is not an
        acknowledgement). None while spooling: :meth:`publish` it instead."""
        if self.direct and self.batcher is not None:
            return self.batcher.add(record)
        return None

    async def publish(self, record: SpooledRecord) -> str:
        """Makes ``record`` durable; returns ``"kafka"`` or ``"spool"``.

        Raises :class:`PublishRejected` when Kafka refuses it for good, and
        :class:`~ingest.spool.SpoolError` when it had to be spooled and the spool could not.
        """
        batch = self.send(record)
        if batch is None:
            return await self.spool_record(record)
        outcome = await batch.answer
        if is_acknowledged(outcome):
            return "kafka"
        return await self.fall_back(record, batch, outcome)

    async def fall_back(self, record: SpooledRecord, batch: Batch, outcome: Any) -> str:
        """After :meth:`send`'s batch was not acknowledged (``outcome``): raises
        :class:`PublishRejected` when Kafka refused it for good; otherwise switches to
        spooling and spools ``record`` (returns ``"spool"``, or raises
        :class:`~ingest.spool.SpoolError`). A batch that timed out is still in the producer's
        hands: the drainer waits for its delivery instead of sending the record twice."""
        if outcome is TIMED_OUT:
            self._enter_spooling("produce timed out")
            self._in_flight[event_id_of(record)] = batch.fate
        elif not is_retriable(outcome):
            raise PublishRejected(str(outcome)) from outcome
        else:
            self._enter_spooling(f"produce failed: {outcome!r}")
        return await self.spool_record(record)

    async def spool_record(self, record: SpooledRecord) -> str:
        """Appends ``record`` to the spool (fsync'd); returns ``"spool"``."""
        await self.spool.append(record)
        self.metrics.spool_depth.set(self.spool.depth)
        return "spool"

    def _enter_spooling(self, reason: str) -> None:
        if self.direct:
            logger.warning("ingest.kafka.unavailable", extra={"reason": reason})
        self.direct = False
        self.metrics.kafka_up.set(0)
        self._wake.set()

    def _leave_spooling(self) -> None:
        if not self.direct:
            logger.info("ingest.kafka.available")
        self.direct = True
        self.metrics.kafka_up.set(1)
        self.metrics.spool_depth.set(0)

    async def drain_forever(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Sends spooled records to Kafka in order until cancelled; never raises otherwise."""
        while True:
            if not await self.connect():
                await sleep(RETRY_S)
                continue
            if self.spool.depth == 0 and not self._in_flight:
                self._leave_spooling()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                drained = await self._drain_batch()
            except KafkaError as error:
                logger.info("ingest.spool.drain_retry", extra={"error": str(error)})
                drained = 0
            if drained == 0:
                await sleep(RETRY_S)

    async def _drain_batch(self) -> int:
        """Sends the oldest spooled records; confirms the prefix Kafka acknowledged."""
        assert self.batcher is not None
        batch = self.spool.read(DRAIN_BATCH)
        if not batch:
            return 0
        fates = []
        for _, record in batch:
            original = self._in_flight.pop(event_id_of(record), None)
            fates.append(original if original is not None else self.batcher.add(record).fate)
        results = [await fate for fate in fates]  # in order; most share a few batches
        delivered = next(
            (i for i, r in enumerate(results) if isinstance(r, BaseException)), len(results)
        )
        if delivered:  # confirm the acknowledged prefix only: order is kept
            self.spool.confirm(batch[delivered - 1][0], delivered)
            self.metrics.spool_depth.set(self.spool.depth)
            self.metrics.spool_drained.inc(delivered)
        if delivered < len(batch):
            raise KafkaError(f"spooled record not delivered: {results[delivered]!r}")
        return delivered

    async def close(self, drainer: asyncio.Task[None] | None) -> None:
        """Stops draining, then flushes the producer (waits for records in flight)."""
        if drainer is not None:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
        if self.batcher is not None:
            await self.batcher.close()
            await self.batcher.producer.stop()
        self.spool.close()


REFUSALS = (
    ValueError,  # larger than a batch can hold
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    InvalidTopicError,
)


def is_acknowledged(outcome: Any) -> bool:
    """Whether a batch's outcome is Kafka's acknowledgement (not a timeout, not an error)."""
    return outcome is not TIMED_OUT and not isinstance(outcome, BaseException)


def is_retriable(error: BaseException) -> bool:
    """False for Kafka's refusals of the record itself; anything else (a broker away, a
    timeout) is worth spooling and sending again later."""
    return not isinstance(error, REFUSALS)


def event_id_of(record: SpooledRecord) -> bytes:
    """The ``event-id`` header of a record (empty when it has none)."""
    return next((value for name, value in record.headers if name == "event-id"), b"")
