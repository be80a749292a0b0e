"""The open-loop sender: both clients deliver every hook once, errors are counted, not hung."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import uvicorn

from bench.echo_app import app as echo_app
from simulator.connections import answer_length
from simulator.load import repeat_gaps, send_day
from simulator.schedule import Send


@asynccontextmanager
async def echo_server(seen: list[tuple[str, bytes]]) -> AsyncIterator[str]:
    """The benchmark's echo app on a fresh port, noting each request's path and body."""

    async def noting(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await echo_app(scope, receive, send)

        async def receive_noted():  # type: ignore[no-untyped-def]
            message = await receive()
            seen.append((scope["path"], message.get("body", b"")))
            return message

        return await echo_app(scope, receive_noted, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(noting, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/apps/wcs"
    finally:
        server.should_exit = True
        await task
        sock.close()


def sends(count: int) -> list[Send]:
    return [Send(i * 0.01, "connect", orjson.dumps({"sessionId": str(i)})) for i in range(count)]


@pytest.mark.parametrize("client", ["lean", "aiohttp"])
async def test_every_hook_is_posted_once_at_its_path(client: str) -> None:
    seen: list[tuple[str, bytes]] = []
    async with echo_server(seen) as url:
        report = await send_day(sends(200), url, 10.0, connections=8, client=client)
    assert report.statuses == {"200": 200}
    assert report.non_200 == 0
    assert sorted(seen) == sorted(("/apps/wcs/connect", s.body) for s in sends(200))
    assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms


@pytest.mark.parametrize("client", ["lean", "aiohttp"])
async def test_a_refused_connection_is_counted(client: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/apps/wcs"  # bound, not listening
        report = await send_day(sends(20), url, 10.0, connections=4, timeout_s=5, client=client)
    assert report.sent == 20
    assert report.non_200 == 20
    assert "200" not in report.statuses


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", (200, 40)),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{", None),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\nHTTP/1.1", (403, 45)),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", (200, 59)),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n", None),
        (b"HTTP/1.1 200 OK\r\n", None),
    ],
)
def test_answer_length(data: bytes, expected: tuple[int, int] | None) -> None:
    assert answer_length(bytearray(data)) == expected


def test_a_repeated_body_is_paired_with_its_latest_earlier_answered_copy() -> None:
    keepalive = b'{"mediaSessionId": "leg-1"}'
    sends = [
        Send(0.0, "StreamKeepAliveEvent", keepalive),
        Send(10.0, "StreamKeepAliveEvent", keepalive),  # the leg's next keep-alive
        Send(10.5, "StreamKeepAliveEvent", keepalive, duplicate=True),
        Send(11.0, "StreamStatusEvent", keepalive),  # another hook: not a repeat
        Send(12.0, "connect", b"{}"),
        Send(12.2, "connect", b"{}", duplicate=True),  # its original failed: nothing to pair
    ]
    latencies = [0.01, 0.3, 0.02, 0.01, 0.01, 0.01]
    gaps = repeat_gaps(sends, speed=10.0, latencies=latencies, failed={4})
    # at 10x: the next keep-alive 1 s later, the duplicate 0.05 s after it; each receipt lies
    # between its scheduled moment and its answer
    assert [index for index, _, _ in gaps] == [1, 2]
    (_, least, most), (_, dup_least, dup_most) = gaps
    assert least == pytest.approx(1.0 - 0.01)
    assert most == pytest.approx(1.0 + 0.3)
    assert dup_least == pytest.approx(0.05 - 0.3)
    assert dup_most == pytest.approx(0.05 + 0.02)
