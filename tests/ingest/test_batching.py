"""The batcher against the real broker: when a round waits out the linger, and when not; a
partition's lone batch goes straight to its leader, numbered as aiokafka's sender numbers it,
and the two ways keep one sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.structs import ConsumerRecord

from ingest.app import make_producer
from ingest.batching import BUSY_ROUND, TIMED_OUT, Batcher
from ingest.spool import SpooledRecord
from tests.conftest import unique_name
from tests.ingest.conftest import ReadTopic
from wcs_audit.settings import Settings

LINGER_S = 0.5  # far above the broker's acknowledgement (milliseconds) on loopback


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    started = make_producer(settings)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def batcher(producer: AIOKafkaProducer, topic: str) -> AsyncIterator[Batcher]:
    partitions = {topic: len(await producer.partitions_for(topic))}
    started = Batcher(
        producer, partitions, timeout_s=10, interval_s=LINGER_S, observe=lambda _: None
    )
    try:
        yield started
    finally:
        await started.close()


def record(topic: str, number: int) -> SpooledRecord:
    return SpooledRecord(topic, f"session-{number}".encode(), b'{"n":%d}' % number, [])


async def acknowledged(batcher: Batcher, records: list[SpooledRecord]) -> float:
    """Adds ``records`` at once and waits for all their answers; returns the seconds taken."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(batcher.add(r).answer for r in records))
    assert all(a is not TIMED_OUT and not isinstance(a, BaseException) for a in answers)
    return loop.time() - started


async def test_after_a_small_round_the_next_leaves_at_once(batcher: Batcher, topic: str) -> None:
    await acknowledged(batcher, [record(topic, 0)])
    for number in range(1, 4):  # each a round of one record: never a busy worker
        assert await acknowledged(batcher, [record(topic, number)]) < LINGER_S / 2


async def test_after_a_busy_round_the_next_waits_out_the_linger(
    batcher: Batcher, topic: str
) -> None:
    await acknowledged(batcher, [record(topic, n) for n in range(BUSY_ROUND)])
    # the busy round started under a millisecond or so before it was acknowledged
    assert await acknowledged(batcher, [record(topic, BUSY_ROUND)]) > LINGER_S * 0.8


@pytest.fixture
async def small_batches(settings: Settings, topic: str) -> AsyncIterator[Batcher]:
    """A batcher whose batches hold one record of :func:`padded` each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=256,
    )
    await producer.start()
    partitions = {topic: len(await producer.partitions_for(topic))}
    started = Batcher(producer, partitions, timeout_s=10, interval_s=0, observe=lambda _: None)
    try:
        yield started
    finally:
        await started.close()
        await producer.stop()


def padded(topic: str, number: int, size: int = 200) -> SpooledRecord:
    return SpooledRecord(topic, b"session-1", b'{"n":%d,"pad":"%s"}' % (number, b"x" * size), [])


def number(record: ConsumerRecord) -> int:
    """The ``n`` of a :func:`padded` record."""
    return int(record.value.split(b",")[0].removeprefix(b'{"n":'))


async def test_lone_batches_go_straight_and_the_rest_through_aiokafka_in_one_sequence(
    small_batches: Batcher, read_topic: ReadTopic, topic: str
) -> None:
    fates = [await small_batches.add(padded(topic, n)).fate for n in range(3)]
    # one round, three batches for one partition: aiokafka's sender takes them
    crowded = [small_batches.add(padded(topic, n)) for n in range(3, 6)]
    fates += [await batch.fate for batch in crowded]
    fates += [await small_batches.add(padded(topic, n)).fate for n in range(6, 9)]

    straight, through_aiokafka = fates[:3] + fates[6:], fates[3:6]
    assert all(type(fate) is int for fate in straight)  # the offset from the produce response
    assert all(hasattr(fate, "offset") for fate in through_aiokafka)  # aiokafka's metadata
    # one key, one partition: the topic's records in that partition's order
    assert [number(r) for r in await read_topic(topic, 9)] == list(range(9))


async def test_a_batch_refused_for_good_leaves_its_sequence_to_the_next(
    small_batches: Batcher, settings: Settings, read_topic: ReadTopic
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    narrow = unique_name("test.narrow")
    await admin.create_topics([NewTopic(narrow, 1, 1, topic_configs={"max.message.bytes": "1024"})])
    try:
        small_batches.partitions[narrow] = 1
        refused = await small_batches.add(padded(narrow, 0, size=4000)).fate
        assert isinstance(refused, MessageSizeTooLargeError | RecordListTooLargeError)
        kept = await small_batches.add(padded(narrow, 1)).fate
        assert type(kept) is int
        assert [number(r) for r in await read_topic(narrow, 1)] == [1]
    finally:
        await admin.delete_topics([narrow])
        await admin.close()


async def test_closing_waits_for_the_round_in_flight(small_batches: Batcher, topic: str) -> None:
    batch = small_batches.add(padded(topic, 0))
    await asyncio.sleep(0)  # the flusher takes the round and sends it
    await small_batches.close()
    assert type(await batch.fate) is int  # acknowledged, not "receiver stopping"
