"""The receiver's Kafka topics, created at start-up when missing."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)

RECORD_OVERHEAD_BYTES = 64 * 1024  # headers and batch framing around the largest body


def max_record_bytes(settings: Settings) -> int:
    """The largest record the receiver produces: the body limit plus headers and framing."""
    return settings.max_body_bytes + RECORD_OVERHEAD_BYTES


async def ensure_topics(settings: Settings) -> list[str]:
    """Creates the hook and rejected topics if missing; returns both names.

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
            config = {"max.message.bytes": str(max_record_bytes(settings))}
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
        return [settings.topic, settings.rejected_topic]
    finally:
        await admin.close()
