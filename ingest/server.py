"""The receiver's HTTP/1.1 server: httptools parses, requests of a connection are answered in
order, nothing else runs per request.

Measured here, an ASGI echo app under uvicorn answers ~8,000 requests/s and the same echo on a
bare httptools protocol ~26,000: ASGI's per-request dicts, task and message round trips cost
more than everything the receiver does with a hook. WCS's REST client needs little of HTTP
(POST with a body, keep-alive), so the receiver speaks it directly; the logic stays
transport-free in :class:`~ingest.receive.HookReceiver`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from ingest.receive import TEXT, Answer, Request

logger = logging.getLogger(__name__)

REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
           404: b"Not Found", 405: b"Method Not Allowed", 413: b"Content Too Large",
           415: b"Unsupported Media Type", 431: b"Request Header Fields Too Large",
           500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip
MAX_HEADER_BYTES = 64 * 1024
MAX_QUEUED = 32  # requests parsed but not answered on one connection before reading pauses
IDLE_TIMEOUT_S = 75.0

Handler = Callable[[Request], Awaitable[Answer]]


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are handled one after another, so answers keep the
    order of requests (pipelining is safe); reading pauses while too many wait."""

    def __init__(
        self,
        handle: Handler,
        limit: int,
        keep: int,
        connections: set[HttpConnection],
        observe: Callable[[float], None],
    ) -> None:
        self.handle = handle
        self.limit = limit  # largest body accepted
        self.keep = keep  # bytes of a refused body kept for the rejected topic
        self.connections = connections
        self.observe = observe
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote_addr = ""
        self.queue: collections.deque[tuple[Request, bool, float]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.header_bytes = 0
        self.headers_too_large = False
        self.content_type: bytes | None = None
        self.authorization: list[bytes] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.started = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # one write per answer: without this, Nagle holds an answer back until the
            # client ACKs the previous one (tens of ms with delayed ACKs)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.remote_addr = peer[0] if peer else ""
        self.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None
        if self.idle is not None:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        self._arm_idle()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported\n")
        except httptools.HttpParserError:
            if self.headers_too_large:
                self._fail(431, b"request headers larger than 64 KiB\n")
            else:
                self._fail(400, b"malformed HTTP request\n")

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.started = time.perf_counter()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            self.headers_too_large = True
            raise httptools.HttpParserError("headers too large")
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name == b"authorization":
            self.authorization.append(value)
        elif name == b"content-length" and value.isdigit() and int(value) > self.limit:
            self.too_large = True
        elif name == b"expect" and value.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        before = self.size
        self.size += len(body)
        self.too_large = self.too_large or self.size > self.limit
        if not self.too_large or before < self.keep:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        data = b"".join(self.chunks)
        url = httptools.parse_url(self.url)
        request = Request(
            method=self.parser.get_method().decode("ascii", "replace"),
            path=url.path.decode("utf-8", "replace"),
            remote_addr=self.remote_addr,
            content_type=self.content_type,
            authorization=self.authorization,
            body=None if self.too_large else data,
            body_prefix=data[: self.keep],
        )
        self.queue.append((request, self.parser.should_keep_alive(), self.started))
        if len(self.queue) > MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._answer_queue())

    # -- answering ------------------------------------------------------------------------

    async def _answer_queue(self) -> None:
        while self.queue:
            request, keep_alive, started = self.queue.popleft()
            try:
                answer = await self.handle(request)
            except Exception:  # a bug, not bad input: answer 500 so WCS sees it and retries
                logger.exception("ingest.request.failed", extra={"path": request.path[:256]})
                answer, keep_alive = Answer(500, b"internal error\n", TEXT), False
            if self.transport is None:
                continue  # the client left; the hook was still handled (WCS will retry)
            self.transport.write(response_bytes(answer, keep_alive, request.method == "HEAD"))
            self.observe(time.perf_counter() - started)
            if not keep_alive:
                self.transport.close()
                return
            if len(self.queue) <= MAX_QUEUED // 2:
                self.transport.resume_reading()

    @property
    def busy(self) -> bool:
        """True while a request is being answered or waits to be."""
        return bool(self.queue) or (self.worker is not None and not self.worker.done())

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_S, self.close_if_idle)

    def _fail(self, status: int, reason: bytes) -> None:
        if self.transport is not None:
            self.transport.write(response_bytes(Answer(status, reason, TEXT), False, False))
            self.transport.close()


def response_bytes(answer: Answer, keep_alive: bool, head: bool) -> bytes:
    """The status line, headers and (unless HEAD) body of ``answer``."""
    lines = [
        b"HTTP/1.1 %d %s" % (answer.status, REASONS.get(answer.status, b"")),
        b"content-type: " + answer.content_type,
        b"content-length: %d" % len(answer.body),
    ]
    lines += [name + b": " + value for name, value in answer.headers]
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else answer.body)


class HttpServer:
    """Serves ``handle`` on a listening socket until :meth:`stop`."""

    def __init__(
        self, handle: Handler, limit: int, keep: int, observe: Callable[[float], None]
    ) -> None:
        self.handle = handle
        self.limit = limit
        self.keep = keep
        self.observe = observe
        self.connections: set[HttpConnection] = set()
        self.server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Starts accepting on ``sock`` (a bound, listening ``socket.socket``)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: HttpConnection(
                self.handle, self.limit, self.keep, self.connections, self.observe
            ),
            sock=sock,
            backlog=2048,
        )

    async def stop(self, grace_s: float) -> None:
        """Stops accepting, lets requests in hand finish (up to ``grace_s``), closes the rest."""
        if self.server is not None:
            self.server.close()
        deadline = time.monotonic() + grace_s
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls many connections
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
