"""Nothing is lost when Kafka goes away or the receiver is killed: a second, real Kafka broker
is stopped and started under a running receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.ingest.conftest import ReadTopic, free_port, receiver_env, running_receiver
from wcs_audit.settings import Settings
from wcs_audit.stack.kafka import start_kafka, stop_kafka

pytestmark = pytest.mark.kafka

SESSIONS = ("s-a", "s-b", "s-c")


@pytest.fixture(scope="module")
def spare_kafka(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second local broker of our own, which these tests stop and start at will."""
    port, controller = free_port(), free_port()
    spare = stack.replace(
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_controller_port=controller,
        state_dir=tmp_path_factory.mktemp("spare-kafka"),
        kafka_heap="512m",
    )
    start_kafka(spare)
    yield spare
    stop_kafka(spare)


@pytest.fixture
def receiver_settings(spare_kafka: Settings, receiver_settings: Settings) -> Settings:
    return receiver_settings.replace(
        kafka_bootstrap=spare_kafka.kafka_bootstrap,
        kafka_controller_port=spare_kafka.kafka_controller_port,
        state_dir=spare_kafka.state_dir,
    )


def hook_body(session: str, seq: int) -> bytes:
    return orjson.dumps(
        {
            "nodeId": "node-1",
            "sessionId": session,
            "seq": seq,
            "mediaSessionId": f"{session}-leg",
            "status": "PUBLISHING",
        }
    )


async def post_until_refused(client: httpx.AsyncClient, url: str, seqs: range) -> list[int]:
    """Posts hooks one after another until the receiver stops answering; returns the ones
    answered 200."""
    acked = []
    for seq in seqs:
        try:
            answer = await client.post(
                f"{url}/apps/wcs/StreamKeepAliveEvent", content=hook_body(SESSIONS[seq % 3], seq)
            )
        except httpx.TransportError:
            break
        if answer.status_code == 200:
            acked.append(seq)
    return acked


async def post_hooks(client: httpx.AsyncClient, url: str, seqs: range) -> list[int]:
    """Posts hooks of three sessions one after another; returns the statuses."""
    statuses = []
    for seq in seqs:
        answer = await client.post(
            f"{url}/apps/wcs/StreamKeepAliveEvent", content=hook_body(SESSIONS[seq % 3], seq)
        )
        statuses.append(answer.status_code)
    return statuses


async def wait_until_drained(client: httpx.AsyncClient, url: str, timeout_s: float = 90) -> None:
    for _ in range(int(timeout_s * 4)):
        ready = (await client.get(f"{url}/readyz")).json()
        if ready == {"kafka": "direct", "spool_depth": 0}:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"spool not drained: {ready}")


def seqs_by_session(records: list[object]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for record in records:
        body = orjson.loads(record.value)  # type: ignore[attr-defined]
        found.setdefault(body["sessionId"], []).append(body["seq"])
    return found


async def test_kafka_outage_spools_then_delivers_everything_in_order_once(
    receiver_settings: Settings,
    spare_kafka: Settings,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
) -> None:
    async with running_receiver(receiver_settings) as url:
        assert await post_hooks(client, url, range(0, 30)) == [200] * 30
        stop_kafka(spare_kafka)
        try:
            assert await post_hooks(client, url, range(30, 90)) == [200] * 60
            ready = (await client.get(f"{url}/readyz")).json()
            assert ready["kafka"] == "spooling"
            assert ready["spool_depth"] >= 59  # the first may still be in the producer's hands
        finally:
            await asyncio.to_thread(start_kafka, spare_kafka)
        await wait_until_drained(client, url)
        assert await post_hooks(client, url, range(90, 120)) == [200] * 30

    records = await read_topic(receiver_settings.topic, 120)
    assert len(records) == 120  # none lost, none twice
    by_session = seqs_by_session(records)
    for index, session in enumerate(SESSIONS):
        assert by_session[session] == list(range(index, 120, 3)), session  # in order


async def test_receiver_killed_while_spooling_loses_nothing_answered(
    receiver_settings: Settings,
    spare_kafka: Settings,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = receiver_env(receiver_settings, tmp_path / "spool", port, produce_timeout_ms="1000")
    url = f"http://127.0.0.1:{port}"

    async def start_receiver() -> subprocess.Popen[bytes]:
        with (tmp_path / "receiver.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "wcs_audit.cli", "receiver"], env=env, stderr=log
            )
        for _ in range(200):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        process.kill()
        raise AssertionError((tmp_path / "receiver.log").read_text())

    stop_kafka(spare_kafka)
    try:
        receiver = await start_receiver()
        answered = await post_hooks(client, url, range(0, 40))
        assert answered == [200] * 40  # Kafka is down: all spooled
        # the three sessions at once, each one's hooks in order (as WCS sends a session's
        # hooks): the order to keep is per session, and concurrent posts of one session may
        # reach the receiver in any order
        burst = [
            asyncio.create_task(post_until_refused(client, url, range(40 + first, 240, 3)))
            for first in range(3)
        ]
        await asyncio.sleep(0.05)
        os.kill(receiver.pid, signal.SIGKILL)  # mid-burst
        receiver.wait()
        acked = list(range(40)) + [s for seqs in await asyncio.gather(*burst) for s in seqs]
    finally:
        await asyncio.to_thread(start_kafka, spare_kafka)

    receiver = await start_receiver()
    try:
        await wait_until_drained(client, url)
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=30)

    records = await read_topic(receiver_settings.topic, len(acked))
    delivered = [seq for seqs in seqs_by_session(records).values() for seq in seqs]
    assert set(acked) <= set(delivered)  # every hook answered 200 reached Kafka
    assert len(delivered) == len(set(delivered))  # and none twice
    for seqs in seqs_by_session(records).values():
        assert seqs == sorted(seqs)  # in the order they were spooled
