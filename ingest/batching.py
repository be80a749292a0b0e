"""Groups concurrent records into Kafka batches, one per partition, sent in rounds, with one
answer per batch.

aiokafka's ``send()`` costs ~70 µs of CPU per record (measured here), most of it per-record
bookkeeping in Python. Building the partition batches ourselves (``create_batch`` /
``send_batch``, records appended by aiokafka's C record builder) and waking every request of a
batch from one future brings that down.

The broker's CPU goes mostly per produce request (~0.4 ms here, against ~25 µs per batch and
~5 µs per record), and aiokafka sends one request per broker at a time. So records go out in
rounds: a round hands every partition's open batch to the producer at once (one produce
request) and waits for the answers; records that arrive meanwhile fill the next round's
batches. Under load batches grow with the broker's round trip instead of queueing behind it.
After a round of at least ``BUSY_ROUND`` records the next starts at least ``interval_s`` after
it, which bounds the produce requests per second of a busy worker; after a smaller round,
and when the batcher is idle, a record leaves as soon as the previous round is settled.
Order within a partition is the order of :meth:`Batcher.add`.

A round's lone batch per partition (the common case) goes straight to its leader in one
produce request per broker, numbered as aiokafka's sender would number it (the idempotent
producer's id, epoch and sequence); aiokafka's sender, which costs ~90-120 µs more per
request, takes the rest and every batch whose direct request failed, and retries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from aiokafka import AIOKafkaProducer, errors
from aiokafka.errors import DuplicateSequenceNumber
from aiokafka.partitioner import murmur2
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.structs import TopicPartition as KafkaPartition

from ingest.spool import SpooledRecord

logger = logging.getLogger(__name__)

KEY_CACHE_MAX = 100_000
# A round of this many records marks a busy worker: only then does the next round wait out the
# linger. At 5,000 hooks/s (2 workers, linger 2 ms) this took 7-10 % fewer of the 2 cores
# than a linger after every round at 1 ms, with the lower p99 in 5 of 6 alternating runs; at
# 1,000/s, where rounds carry one or two records, it added nothing to the answer time.
BUSY_ROUND = 3

TopicPartition = tuple[str, int]
# a produce response's codes for a batch that is in the log (the second: it already was)
ACKNOWLEDGED = frozenset({0, DuplicateSequenceNumber.errno})
# the refusals of a batch for good, which sending it again cannot change
REFUSED = frozenset(
    {
        errors.MessageSizeTooLargeError,
        errors.RecordListTooLargeError,
        errors.TopicAuthorizationFailedError,
        errors.InvalidTopicError,
    }
)


class TimedOut:
    """The answer of a batch that Kafka did not acknowledge within the produce timeout."""


TIMED_OUT: Final = TimedOut()


class Batch:
    """Records bound for one partition, sent together.

    ``fate`` resolves once Kafka acknowledged the batch (with its metadata) or it definitely
    failed (with the error, as the result): the truth, however long it takes. ``answer``
    resolves with the same, or with :data:`TIMED_OUT` once ``timeout_s`` passed: what a
    waiting request gets. Neither ever raises. ``started`` is the loop time of its creation.
    """

    __slots__ = ("answer", "builder", "fate", "records", "started", "timer")

    def __init__(self, builder: Any, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.builder = builder
        self.records: list[SpooledRecord] = []  # to build the batch again for aiokafka's sender
        self.fate: asyncio.Future[Any] = loop.create_future()
        self.answer: asyncio.Future[Any] = loop.create_future()
        self.started = loop.time()
        self.timer = loop.call_at(self.started + timeout_s, self._time_out)

    def _time_out(self) -> None:
        if not self.answer.done():
            self.answer.set_result(TIMED_OUT)

    def append(self, record: SpooledRecord) -> bool:
        """Adds ``record``; False when the batch is full (then it is unchanged)."""
        if (
            self.builder.append(
                timestamp=None, key=record.key, value=record.value, headers=record.headers
            )
            is None
        ):
            return False
        self.records.append(record)
        return True

    def settle(self, outcome: Any) -> None:
        """Records the batch's fate (metadata, or the exception) and answers the waiters."""
        self.timer.cancel()
        if not self.fate.done():
            self.fate.set_result(outcome)
        if not self.answer.done():
            self.answer.set_result(outcome)


class Batcher:
    """Batches records for ``producer``; :meth:`add` never blocks, a flusher task sends.

    ``observe`` gets, for each acknowledged batch, the seconds from its first record to the
    acknowledgement.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        partitions: dict[str, int],
        *,
        timeout_s: float,
        interval_s: float,
        observe: Callable[[float], None],
    ) -> None:
        self.producer = producer
        self.partitions = partitions  # topic -> partition count
        self.timeout_s = timeout_s
        self.interval_s = interval_s  # least time between the starts of two rounds
        self.observe = observe
        self._loop = asyncio.get_running_loop()
        self._open: dict[TopicPartition, list[Batch]] = {}  # the next round; last batch open
        self._waiting = asyncio.Event()  # set while the next round has records
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._round_robin = itertools.count()
        self._handed_over = asyncio.Event()  # clear while a round is being sent
        self._handed_over.set()
        self._flusher = self._loop.create_task(self._flush_forever())

    def add(self, record: SpooledRecord) -> Batch:
        """Queues ``record``; returns the batch it joined (await its ``answer`` or ``fate``)."""
        tp = (record.topic, self.partition_of(record.topic, record.key))
        batches = self._open.get(tp)
        if batches is None:
            batches = self._open[tp] = []
            self._waiting.set()
        if not batches or not batches[-1].append(record):
            batch = Batch(self.producer.create_batch(), self._loop, self.timeout_s)
            appended = batch.append(record)
            assert appended, "aiokafka takes any first record into an empty batch"
            batches.append(batch)
        return batches[-1]

    def partition_of(self, topic: str, key: bytes | None) -> int:
        """Kafka's default partitioner (murmur2 of the key), cached per key."""
        count = self.partitions[topic]
        if key is None:
            return next(self._round_robin) % count
        cached = self._partition_of.get((topic, key))
        if cached is None:
            if len(self._partition_of) >= KEY_CACHE_MAX:
                self._partition_of.clear()
            cached = (murmur2(key) & 0x7FFFFFFF) % count
            self._partition_of[(topic, key)] = cached
        return cached

    async def _flush_forever(self) -> None:
        """Sends one round at a time, each once it has records and the previous round is
        settled, and after a round of ``BUSY_ROUND`` records or more once ``interval_s``
        passed since that round's start."""
        started, previous = -self.interval_s, 0
        while True:
            await self._waiting.wait()
            pause = started + self.interval_s - self._loop.time()
            if pause > 0 and previous >= BUSY_ROUND:
                await asyncio.sleep(pause)
            started = self._loop.time()
            self._waiting.clear()
            round_, self._open = self._open, {}
            previous = sum(b.builder.record_count() for bs in round_.values() for b in bs)
            self._handed_over.clear()
            try:
                batches = await self._hand_over(round_)
            finally:
                self._handed_over.set()
            for batch in batches:
                outcome = await batch.fate
                if not isinstance(outcome, BaseException):
                    self.observe(self._loop.time() - batch.started)

    async def _hand_over(self, round_: dict[TopicPartition, list[Batch]]) -> list[Batch]:
        """Sends the round: each partition's lone batch straight to its leader, one produce
        request per broker (:meth:`_produce`); the others, and those whose request failed, go
        through aiokafka's sender, which retries. Returns the batches whose fate is to come."""
        direct, rest = self._split(round_)
        try:
            if len(direct) == 1:  # one broker, or one partition: no task for gather to wrap
                [(node, items)] = direct.items()
                results = [await self._produce(node, items)]
            else:
                results = await asyncio.gather(*(self._produce(n, i) for n, i in direct.items()))
        except asyncio.CancelledError:  # stopping: what was in flight has no known fate
            for items in direct.values():
                for _, batch in items:
                    batch.settle(ConnectionError("receiver stopping"))
            raise
        await self._hand_to_sender(rest + [item for failed in results for item in failed])
        return [batch for batches in round_.values() for batch in batches]

    def _split(
        self, round_: dict[TopicPartition, list[Batch]]
    ) -> tuple[dict[int, list[tuple[TopicPartition, Batch]]], list[tuple[TopicPartition, Batch]]]:
        """The round's batches by leader, those that can go straight to it (a partition's
        only batch, its leader known, the producer id known), and the rest."""
        txn = self.producer._txn_manager
        ready = txn is not None and txn.has_pid()
        cluster = self.producer.client.cluster
        direct: dict[int, list[tuple[TopicPartition, Batch]]] = {}
        rest: list[tuple[TopicPartition, Batch]] = []
        for tp, batches in round_.items():
            leader = cluster.leader_for_partition(KafkaPartition(*tp)) if ready else None
            if len(batches) == 1 and leader is not None and leader >= 0:
                direct.setdefault(leader, []).append((tp, batches[0]))
            else:
                rest.extend((tp, batch) for batch in batches)
        return direct, rest

    async def _produce(
        self, node: int, items: list[tuple[TopicPartition, Batch]]
    ) -> list[tuple[TopicPartition, Batch]]:
        """Sends ``items`` to broker ``node`` in one produce request, numbered as aiokafka's
        sender numbers them (the idempotent producer's id, epoch and next sequence of each
        partition), and settles those Kafka acknowledged. Returns the others, built again
        for aiokafka's sender: their sequence numbers were not advanced, so a resend is the
        same batch to Kafka, appended once.

        Through aiokafka's sender (its accumulator, tasks and waits) a round of one record
        cost 289-292 µs of CPU back to back and 404-427 µs 1 ms apart; this way 198-200 and
        289-319 µs (measured here). At low rates each hook is a round of its own: at 1,000
        hooks/s the receiver took 479-535 instead of 595-619 µs per hook."""
        txn = self.producer._txn_manager
        try:
            topics: dict[str, list[tuple[int, Any]]] = {}
            for (topic, partition), batch in items:
                sequence = txn.sequence_number(KafkaPartition(topic, partition))
                batch.builder._set_producer_state(txn.producer_id, txn.producer_epoch, sequence)
                topics.setdefault(topic, []).append((partition, batch.builder._build()))
            request = ProduceRequest(
                required_acks=-1,
                timeout=self.producer._request_timeout_ms,
                topics=list(topics.items()),
                transactional_id=None,
            )
            response = await self.producer.client.send(node, request)
        except Exception as failure:  # whatever it was, aiokafka's sender sends it again
            logger.info("ingest.kafka.produce_retry", extra={"error": repr(failure)})
            return [(tp, self._rebuilt(batch)) for tp, batch in items]
        sent = dict(items)
        for topic, partitions in response.topics:
            for partition, code, offset, *_ in partitions:
                answered = sent.pop((topic, partition), None)
                if answered is None:
                    continue
                if code in ACKNOWLEDGED:
                    tp = KafkaPartition(topic, partition)
                    txn.increment_sequence_number(tp, answered.builder.record_count())
                    answered.settle(offset)
                elif (refusal := errors.for_code(code)) in REFUSED:
                    answered.settle(refusal())  # not in the log: the sequence stays as it was
                else:
                    sent[(topic, partition)] = answered
        if sent:
            self.producer.client.force_metadata_update()  # a leader may have moved
        return [(tp, self._rebuilt(batch)) for tp, batch in sent.items()]

    def _rebuilt(self, batch: Batch) -> Batch:
        """``batch`` with a new builder holding its records (a built one cannot be resent)."""
        batch.builder = self.producer.create_batch()
        for record in batch.records:
            appended = batch.builder.append(
                timestamp=None, key=record.key, value=record.value, headers=record.headers
            )
            assert appended is not None, "the records fitted in a batch before"
        return batch

    async def _hand_to_sender(self, items: list[tuple[TopicPartition, Batch]]) -> None:
        """Gives batches to aiokafka's producer (which sends them in one request when it is
        idle). A batch it refused or that is still in hand when the batcher stops is settled
        with the error."""
        batches = deque(items)
        try:
            while batches:
                (topic, partition), batch = batches[0]
                try:
                    delivery = await self.producer.send_batch(
                        batch.builder, topic, partition=partition
                    )
                except Exception as error:  # not queued: the batch failed as a whole
                    batch.settle(error)
                else:
                    delivery.add_done_callback(lambda done, b=batch: b.settle(_outcome(done)))
                batches.popleft()
        finally:
            for _, batch in batches:
                batch.settle(ConnectionError("receiver stopping"))

    async def close(self) -> None:
        """Stops the flusher once the round in flight is sent (or ``timeout_s`` passed);
        batches not yet handed to the producer fail."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._handed_over.wait(), self.timeout_s)
        self._flusher.cancel()
        await asyncio.gather(self._flusher, return_exceptions=True)
        for batches in self._open.values():
            for batch in batches:
                batch.settle(ConnectionError("receiver stopping"))
        self._open.clear()


def _outcome(delivery: asyncio.Future[Any]) -> Any:
    """aiokafka's delivery future as a value: its metadata, or its error."""
    if delivery.cancelled():
        return ConnectionError("delivery cancelled")
    return delivery.exception() or delivery.result()
