"""Fixtures: the real local stack (Kafka + PostgreSQL), a fresh topic and database per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from wcs_audit.settings import Settings
from wcs_audit.stack import stack_up
from wcs_audit.stack.postgres import create_database, drop_database


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from this environment: the local stack unless WCS_AUDIT_* point elsewhere."""
    return Settings.from_env(os.environ)


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Settings:
    """Brings up (or reuses) the local Kafka and PostgreSQL once per test session."""
    stack_up(base_settings)
    return base_settings


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``wcs-audit`` process on ``settings``' Kafka and topic; ``extra``
    adds ``WCS_AUDIT_<NAME>`` variables."""
    return {
        **os.environ,
        "WCS_AUDIT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "WCS_AUDIT_TOPIC": settings.topic,
        **{f"WCS_AUDIT_{name.upper()}": value for name, value in extra.items()},
    }


def wait_for(condition: Callable[[], bool], within: float = 20) -> None:
    """Polls ``condition`` until true; fails the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
async def topic(stack: Settings) -> AsyncIterator[str]:
    """A fresh 3-partition topic on the real broker, deleted after the test with its rejected
    topic (``settings``), which a receiver under test may have created (a topic that does
    not exist is reported, not raised)."""
    name = unique_name("test.hooks")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name, rejected_topic_of(name)])
    finally:
        await admin.close()


@pytest.fixture
def database_url(stack: Settings) -> Iterator[str]:
    """A fresh, empty database on the real PostgreSQL, dropped after the test."""
    url = stack.database_url.rsplit("/", 1)[0] + "/" + unique_name("test")
    create_database(url)
    yield url
    drop_database(url)


def rejected_topic_of(topic: str) -> str:
    """The rejected topic that goes with a test's ``topic``."""
    return topic + ".rejected"


@pytest.fixture
def settings(stack: Settings, topic: str, database_url: str) -> Settings:
    """Settings of one test: its own topic and database on the real stack."""
    return stack.replace(
        topic=topic, rejected_topic=rejected_topic_of(topic), database_url_env=database_url
    )
