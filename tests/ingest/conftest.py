"""Fixtures of the receiver tests: a real receiver on a real socket, a reader of its topics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from ingest.app import listening_socket, receiving
from tests.conftest import service_env
from tests.loops import on_uvloop
from tests.samples import SAMPLES
from wcs_audit.settings import Settings

pytest_asyncio_loop_factories = on_uvloop  # the receiver's and projector's loop


def sample(hook: str) -> bytes:
    """The reference body of ``hook`` from shared/wcs/samples, byte for byte."""
    return (SAMPLES / f"{hook}.json").read_bytes()


def sample_hooks() -> list[str]:
    """Every hook of shared/wcs/samples (fails loudly when there are none)."""
    hooks = sorted(path.stem for path in SAMPLES.glob("*.json"))
    assert hooks, f"no samples in {SAMPLES}"
    return hooks


@asynccontextmanager
async def running_receiver(settings: Settings) -> AsyncIterator[str]:
    """Serves the receiver on a fresh loopback port; yields its base URL."""
    sock = listening_socket("127.0.0.1", 0)
    try:
        async with receiving(settings, sock):
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def receiver_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's topics, and a spool of its own."""
    return settings.replace(spool_dir=tmp_path / "spool", produce_timeout_ms=1000)


@pytest.fixture
async def receiver(receiver_settings: Settings) -> AsyncIterator[str]:
    async with running_receiver(receiver_settings) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


ReadTopic = Callable[[str, int], Awaitable[list[ConsumerRecord]]]


@pytest.fixture
def read_topic(receiver_settings: Settings) -> ReadTopic:
    """Reads ``count`` records of a topic from its start (all partitions), within 20 s."""

    async def read(topic: str, count: int) -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=receiver_settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[ConsumerRecord] = []
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while len(records) < count and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                records += [r for part in batch.values() for r in part]
            extra = await consumer.getmany(timeout_ms=300)  # nothing more may follow
            records += [r for part in extra.values() for r in part]
        finally:
            await consumer.stop()
        return records

    return read


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def receiver_env(settings: Settings, spool: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a ``wcs-audit receiver`` process on ``port`` for the test's topics,
    spooling under ``spool``; ``extra`` adds ``WCS_AUDIT_<NAME>`` variables."""
    return service_env(
        settings,
        rejected_topic=settings.rejected_topic,
        spool_dir=str(spool),
        http_port=str(port),
        **extra,
    )
