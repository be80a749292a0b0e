"""The batcher against the real broker: when a round waits out the linger, and when not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from ingest.app import make_producer
from ingest.batching import BUSY_ROUND, TIMED_OUT, Batcher
from ingest.spool import SpooledRecord
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
