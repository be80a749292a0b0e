"""The receiver's HTTP/1.1 layer over raw sockets: keep-alive, pipelining, chunked bodies,
HEAD, and malformed requests."""

from __future__ import annotations

import asyncio

import pytest

from ingest.app import listening_socket
from ingest.receive import TEXT, Answer, Request
from ingest.server import HttpServer
from tests.ingest.conftest import ReadTopic, sample
from wcs_audit.settings import Settings

pytestmark = pytest.mark.kafka


async def exchange(url: str, data: bytes, until: bytes, within: float = 10) -> bytes:
    """Writes ``data`` on a fresh connection, reads until ``until`` has appeared."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    received = b""
    try:
        async with asyncio.timeout(within):
            while until not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    finally:
        writer.close()
    return received


def post(hook: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /apps/wcs/" + hook.encode() + b" HTTP/1.1\r\nHost: audit\r\n"
        b"Content-Type: application/json;charset=UTF-8\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def test_pipelined_requests_are_answered_and_recorded_in_order(
    receiver: str, read_topic: ReadTopic, receiver_settings: Settings
) -> None:
    hooks = ["connect", "publishStream", "StreamStatusEvent", "hold", "OnCallEvent"]
    answer = await exchange(
        receiver, b"".join(post(h, sample(h)) for h in hooks), until=sample("OnCallEvent")
    )
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == len(hooks)
    positions = [answer.index(sample(h)) for h in hooks]
    assert positions == sorted(positions)
    records = await read_topic(receiver_settings.topic, len(hooks))
    # one WCS session, so one partition: handled together, still appended in request order
    assert [dict(r.headers)["hook"].decode() for r in records] == hooks


async def test_chunked_body_is_accepted(receiver: str) -> None:
    body = sample("StreamKeepAliveEvent")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:100], body[100:]))
    request = (
        b"POST /apps/wcs/StreamKeepAliveEvent HTTP/1.1\r\nHost: audit\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    answer = await exchange(receiver, request, until=body)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(body)


async def test_connection_close_is_honoured(receiver: str) -> None:
    answer = await exchange(
        receiver,
        post("hold", sample("hold"), b"Connection: close\r\n"),
        until=b"\r\n\r\n" + sample("hold"),
    )
    assert b"connection: close\r\n" in answer


async def test_head_probe_has_no_body(receiver: str) -> None:
    answer = await exchange(
        receiver,
        b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        until=b'"ok"}',
    )
    head, get = answer.split(b"HTTP/1.1 200 OK")[1:]
    assert head.endswith(b"\r\n\r\n")  # headers only
    assert get.endswith(b'{"status":"ok"}')


async def test_malformed_http_gets_400_and_close(receiver: str) -> None:
    answer = await exchange(receiver, b"\x16\x03\x01 not http at all\r\n\r\n", until=b"\n\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in answer


async def test_oversized_headers_get_431(receiver: str) -> None:
    request = b"POST /apps/wcs/hold HTTP/1.1\r\nX-Pad: " + b"x" * 70_000 + b"\r\n\r\n"
    answer = await exchange(receiver, request, until=b"KiB\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_failing_handler_answers_500_and_keeps_serving() -> None:
    calls = []

    async def handle(request: Request) -> Answer:
        calls.append(request.path)
        if request.path.endswith("/boom"):
            raise RuntimeError("a bug")
        return Answer(200, b"fine", TEXT)

    server = HttpServer(handle, limit=1024, keep=64, observe=lambda _: None)
    sock = listening_socket("127.0.0.1", 0)
    await server.start(sock)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        boom = await exchange(url, post("boom", b"{}"), until=b"error\n")
        fine = await exchange(url, post("hold", b"{}"), until=b"fine")
    finally:
        await server.stop(1)
        sock.close()
    assert boom.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"connection: close" in boom
    assert fine.startswith(b"HTTP/1.1 200 OK\r\n")
    assert calls == ["/apps/wcs/boom", "/apps/wcs/hold"]
