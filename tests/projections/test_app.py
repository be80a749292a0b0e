"""The projector's health and metrics endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from projections.app import create_app, create_engine, serve_http
from tests.projections.story import end_offsets, produce, project, sample_story
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition("\r\n\r\n")
    return head.splitlines()[0], body


async def test_health_follows_the_consumer_and_metrics_count_records(
    projector_settings: Settings,
) -> None:
    projector = create_app(projector_settings)
    server = await serve_http(projector, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await get(port, "/healthz") == ("HTTP/1.1 503 Service Unavailable", "stopped\n")
        await projector.start()
        assert await get(port, "/healthz") == ("HTTP/1.1 200 OK", "ok\n")
        await projector.stop()
        assert (await get(port, "/nope"))[0] == "HTTP/1.1 404 Not Found"
    finally:
        server.close()
        await server.wait_closed()


async def test_metrics_count_applied_records(projector_settings: Settings) -> None:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    projector = await project(projector_settings)
    server = await serve_http(projector, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        status, body = await get(port, "/metrics")
    finally:
        server.close()
        await server.wait_closed()
    assert status == "HTTP/1.1 200 OK"
    assert 'wcs_audit_projector_records_total{outcome="applied"} 62.0' in body
    # the story happened in 2024: every batch's oldest hook waited longer than the last bucket
    batches = re.search(r"^wcs_audit_projector_batches_total (\S+)$", body, re.MULTILINE)
    assert batches is not None
    assert float(batches.group(1)) >= 1
    assert 'wcs_audit_projector_lag_seconds_bucket{le="3600.0"} 0.0' in body
    assert f"wcs_audit_projector_lag_seconds_count {batches.group(1)}" in body
    # caught up: every partition's end is its next offset, Kafka's end offset
    ends = await end_offsets(projector_settings)
    topic = projector_settings.topic
    for name in ("next_offset", "end_offset"):
        line = (
            rf'^wcs_audit_projector_{name}{{partition="(\d+)",topic="{re.escape(topic)}"}} (\S+)$'
        )
        found = {
            int(partition): float(value)
            for partition, value in re.findall(line, body, re.MULTILINE)
        }
        assert found == {p: float(end) for p, end in ends.items() if end > 0}, name


@pytest.mark.parametrize("value", ["on", "local", None])
async def test_the_projector_commits_as_configured_without_jit(
    projector_settings: Settings, value: str | None
) -> None:
    """``synchronous_commit`` off by default (PostgreSQL's own default is on); JIT off."""
    settings = projector_settings
    if value is not None:
        settings = dataclasses.replace(settings, projector_synchronous_commit=value)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            commit = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar_one()
            jit = (await conn.exec_driver_sql("SHOW jit")).scalar_one()
    finally:
        await engine.dispose()
    assert (commit, jit) == (value or "off", "off")
