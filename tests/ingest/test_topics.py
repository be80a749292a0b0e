"""The receiver creates its topics as an audit log: kept until an operator says otherwise."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ingest.topics import described_config, ensure_topics, max_record_bytes, topic_config
from tests.conftest import unique_name
from wcs_audit.settings import Settings

pytestmark = pytest.mark.kafka


async def config_of(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The topic's configuration as the broker describes it (a topic created a moment ago may
    not be known to the broker's metadata yet: asked again for up to 10 s)."""
    for _ in range(100):
        config = await described_config(admin, topic)
        if config is not None:
            return config
        await asyncio.sleep(0.1)
    raise AssertionError(f"the broker does not describe {topic!r}")


@pytest.mark.parametrize(("retention_ms", "expected"), [(None, "-1"), (86_400_000, "86400000")])
async def test_topics_are_created_with_the_configured_retention(
    stack: Settings, retention_ms: int | None, expected: str
) -> None:
    name = unique_name("test.retention")
    settings = stack.replace(topic=name, rejected_topic=name + ".rejected")
    if retention_ms is not None:
        settings = settings.replace(topic_retention_ms=retention_ms)
    assert await ensure_topics(settings) == [name, name + ".rejected"]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        for topic in (name, name + ".rejected"):
            config = await config_of(admin, topic)
            assert config["retention.ms"] == expected
            assert config["max.message.bytes"] == str(max_record_bytes(settings))
        await admin.delete_topics([name, name + ".rejected"])
    finally:
        await admin.close()


async def test_an_existing_topic_that_deletes_hooks_is_warned_about(
    stack: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_name("test.retention")
    week = stack.replace(
        topic=name, rejected_topic=name + ".rejected", topic_retention_ms=604_800_000
    )
    await ensure_topics(week)  # as a topic made with Kafka's default retention
    kept = week.replace(topic_retention_ms=-1)
    for _ in range(100):  # until the broker's metadata knows the new topic
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ingest.topics"):
            await ensure_topics(kept)
        if caplog.records:
            break
        await asyncio.sleep(0.1)
    [warning] = caplog.records
    assert warning.getMessage() == "ingest.topic.retention"
    assert (warning.topic, warning.retention_ms) == (name, "604800000")  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ingest.topics"):
        await ensure_topics(week)  # asked for a finite retention: nothing to warn about
    assert caplog.records == []
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name, name + ".rejected"])
    finally:
        await admin.close()


@pytest.mark.parametrize(("replication", "min_insync"), [(1, None), (2, None), (3, "2"), (5, "2")])
def test_acks_all_waits_for_a_follower_too_with_three_replicas_or_more(
    replication: int, min_insync: str | None
) -> None:
    config = topic_config(Settings.from_env({}).replace(topic_replication=replication))
    assert config.get("min.insync.replicas") == min_insync
    assert config["retention.ms"] == "-1"
