"""Several receiver processes on one port: whichever answers ``/metrics`` reports them all."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.ingest.conftest import free_port, receiver_env, sample
from wcs_audit.settings import Settings

pytestmark = pytest.mark.kafka

WORKERS = 2
HOOKS = 120


@pytest.fixture
async def workers(receiver_settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """``wcs-audit receiver`` with two workers; yields its base URL."""
    port = free_port()
    env = receiver_env(receiver_settings, tmp_path / "spool", port, receiver_workers=str(WORKERS))
    log = tmp_path / "receiver.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wcs_audit.cli", "receiver"], env=env, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await until_metrics(url, lambda text: len(kafka_up_series(text)) == WORKERS, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def kafka_up_series(metrics: str) -> list[str]:
    """The per-worker ``kafka_up`` lines of a scrape."""
    return re.findall(r"^wcs_audit_ingest_kafka_up\{.*$", metrics, re.MULTILINE)


def count_of(metrics: str, hook: str) -> float:
    match = re.search(
        rf'^wcs_audit_ingest_requests_total\{{hook="{hook}",status="200"\}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


async def scrape(url: str) -> str:
    """``/metrics`` over a connection of its own, so any worker may answer."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{url}/metrics")
    assert answer.status_code == 200
    return answer.text


async def until_metrics(
    url: str, done: Callable[[str], bool], log: Path, timeout_s: float = 30
) -> str:
    """Scrapes until ``done(text)`` holds; fails with the receiver's log after the timeout."""
    for _ in range(int(timeout_s * 10)):
        try:
            text = await scrape(url)
        except httpx.TransportError:
            text = ""
        if done(text):
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"metrics never matched; log:\n{log.read_text()[-3000:]}")


async def test_metrics_add_up_across_workers(workers: str, tmp_path: Path) -> None:
    body = sample("StreamKeepAliveEvent")
    fresh = httpx.Limits(max_keepalive_connections=0)  # each hook on a new connection
    async with httpx.AsyncClient(timeout=30, limits=fresh) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{workers}/apps/wcs/StreamKeepAliveEvent", content=body)
                for _ in range(HOOKS)
            )
        )
    assert [a.status_code for a in answers] == [200] * HOOKS

    # every worker copies its counts at least once a second: soon any scrape shows them all
    await until_metrics(
        workers,
        lambda text: count_of(text, "StreamKeepAliveEvent") == HOOKS,
        tmp_path / "receiver.log",
    )
    for _ in range(10):  # and keeps showing them, whichever worker answers
        text = await scrape(workers)
        assert count_of(text, "StreamKeepAliveEvent") == HOOKS
        assert len(kafka_up_series(text)) == WORKERS
        assert re.search(r"^wcs_audit_ingest_spool_depth 0\.0$", text, re.MULTILINE)
