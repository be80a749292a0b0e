"""The local broker is a real Kafka: a produce/consume round trip over loopback; starts of
the stack do not overlap."""

from __future__ import annotations

import threading

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from wcs_audit.settings import Settings
from wcs_audit.stack import stack_lock, stack_status, stack_up

pytestmark = pytest.mark.kafka


async def test_round_trip_on_a_fresh_topic(stack: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                topic, f"body-{i}".encode(), key=b"session-1", headers=[("hook", b"connect")]
            )
            for i in range(5)
        ]
    finally:
        await producer.stop()
    assert len({meta.partition for meta in sent}) == 1, "one key must stay on one partition"

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=5)
        records = [record for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [f"body-{i}".encode() for i in range(5)]
    assert {r.key for r in records} == {b"session-1"}
    assert all(r.headers == (("hook", b"connect"),) for r in records)


def test_status_reports_both_services(stack: Settings) -> None:
    status = stack_status(stack)
    assert status.kafka_up
    assert status.postgres_up
    assert status.kafka_bootstrap == stack.kafka_bootstrap


def test_a_second_stack_up_waits_for_the_first_then_reuses_the_services(stack: Settings) -> None:
    finished = threading.Event()

    def second_stack_up() -> None:
        stack_up(stack)
        finished.set()

    with stack_lock(stack):  # as a first `stack up` still starting would hold it
        thread = threading.Thread(target=second_stack_up)
        thread.start()
        assert not finished.wait(1.0)
    thread.join(timeout=60)
    assert finished.is_set()
    assert stack_status(stack).kafka_up
