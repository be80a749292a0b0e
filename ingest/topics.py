"""The receiver's Kafka topics, created at start-up when missing."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)

RECORD_OVERHEAD_BYTES = 64 * 1024  # headers and batch framing around the largest body


def max_record_bytes(settings: Settings) -> int:
    """The largest record the receiver produces: the body limit plus headers and framing."""
    return settings.max_body_bytes + RECORD_OVERHEAD_BYTES


def topic_config(settings: Settings) -> dict[str, str]:
    """The configuration of a topic the receiver creates.

    ``retention.ms``: the broker's default deletes records after 7 days, which is not an
    audit log. ``min.insync.replicas`` 2 with 3 or more replicas: ``acks=all`` then waits for
    a follower too, not only for the leader (the broker's default, 1, lets a leader that
    lost its followers acknowledge alone; a hook it took dies with it).
    """
    config = {
        "max.message.bytes": str(max_record_bytes(settings)),
        "retention.ms": str(settings.topic_retention_ms),
    }
    if settings.topic_replication >= 3:
        config["min.insync.replicas"] = "2"
    return config


async def ensure_topics(settings: Settings) -> list[str]:
    """Creates the hook and rejected topics if missing (kept for ``topic_retention_ms``,
    forever by default); returns both names.

    Raises ``KafkaError`` when the cluster cannot be reached or refuses.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.produce_timeout_ms * 2,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in (settings.topic, settings.rejected_topic) if t not in existing]
        if missing:
            config = topic_config(settings)
            new = [
                NewTopic(
                    t, settings.topic_partitions, settings.topic_replication, topic_configs=config
                )
                for t in missing
            ]
            response = await admin.create_topics(new)
            for name, code, *message in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):  # a peer may race us
                    raise for_code(code)(f"creating topic {name}: {message}")
            logger.info("ingest.topics.created", extra={"topics": missing})
        elif settings.topic_retention_ms == -1:
            await warn_if_deleting(admin, settings.topic)
        return [settings.topic, settings.rejected_topic]
    finally:
        await admin.close()


async def described_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str] | None:
    """``topic``'s configuration as the broker describes it; None when it does not (no
    rights, an old broker, or a topic its metadata does not know yet)."""
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(error_code, _, _, _, entries)] = response.resources
    except KafkaError:
        return None
    return {name: value for name, value, *_ in entries} if error_code == 0 else None


async def warn_if_deleting(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Logs a warning when an existing ``topic`` deletes records after a time (a topic made
    before ``retention.ms=-1`` was the default, or by hand): a rebuild needs its first
    records. Says nothing when the broker does not describe the topic."""
    retention = (await described_config(admin, topic) or {}).get("retention.ms")
    if retention not in (None, "-1"):
        logger.warning(
            "ingest.topic.retention",
            extra={
                "topic": topic,
                "retention_ms": retention,
                "hint": "Kafka deletes older hooks: keep the audit log with retention.ms=-1",
            },
        )
