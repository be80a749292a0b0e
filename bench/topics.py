"""Fresh Kafka topics for a benchmark run, and their removal afterwards."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from wcs_audit.settings import Settings


async def create_topics(settings: Settings, names: Sequence[str], partitions: int = 6) -> None:
    """Creates ``names`` with ``partitions`` partitions and one replica each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: Sequence[str]) -> None:
    """Deletes ``names``; topics that do not exist are fine."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    except Exception:
        pass
    finally:
        await admin.close()
