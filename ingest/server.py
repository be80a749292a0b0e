"""The receiver's HTTP/1.1 server: httptools parses, answers go out in the order of requests,
nothing else runs per request.

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


class Pending:
    """A request being answered: its answer to come, and how to send it."""

    __slots__ = ("answer", "head", "keep_alive", "path", "started")

    def __init__(
        self,
        answer: asyncio.Future[Answer],
        keep_alive: bool,
        head: bool,
        path: str,
        started: float,
    ) -> None:
        self.answer = answer
        self.keep_alive = keep_alive
        self.head = head
        self.path = path
        self.started = started


class HttpConnection(asyncio.Protocol):
    """One client connection. Each request is handed to ``handle`` as soon as it is read, so
    pipelined requests are handled together; answers are written in the order of requests, all
    that are ready in one write. Reading pauses while too many wait."""

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
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.remote_addr = ""
        self.queue: collections.deque[Pending] = collections.deque()
        self.closing = False  # a request without keep-alive was read: read no further
        self.paused = False
        self.last_active = 0.0
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
        self.last_active = self.loop.time()
        self.idle = self.loop.call_at(self.last_active + IDLE_TIMEOUT_S, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None
        if self.idle is not None:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self.closing:
            return
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
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        method = self.parser.get_method().decode("ascii", "replace")
        request = Request(
            method=method,
            path=request_path(self.url),
            remote_addr=self.remote_addr,
            content_type=self.content_type,
            authorization=self.authorization,
            body=None if self.too_large else data,
            body_prefix=data[: self.keep] if self.too_large else b"",
        )
        keep_alive = self.parser.should_keep_alive()
        self.closing = not keep_alive
        answer: asyncio.Future[Answer]
        try:
            answer = asyncio.ensure_future(self.handle(request), loop=self.loop)
        except Exception as error:  # a bug, not bad input: answer 500
            answer = self.loop.create_future()
            answer.set_exception(error)
        pending = Pending(answer, keep_alive, method == "HEAD", request.path, self.started)
        self.queue.append(pending)
        answer.add_done_callback(self._answered)
        if len(self.queue) > MAX_QUEUED and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True

    # -- answering ------------------------------------------------------------------------

    def _answered(self, _: object) -> None:
        """Writes the answers ready at the head of the queue, in order, in one write."""
        out = []
        queue = self.queue
        while queue and queue[0].answer.done():
            pending = queue.popleft()
            answer, keep_alive = self._answer_of(pending)
            out.append(response_bytes(answer, keep_alive, pending.head))
            self.observe(time.perf_counter() - pending.started)
            if not keep_alive:
                self._send(out)
                self._close()
                return
        if out:
            self._send(out)
        if self.paused and len(queue) <= MAX_QUEUED // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False

    def _answer_of(self, pending: Pending) -> tuple[Answer, bool]:
        """The answer of a finished request; 500 (and close) when handling it raised."""
        answer = pending.answer
        error = asyncio.CancelledError() if answer.cancelled() else answer.exception()
        if error is None:
            return answer.result(), pending.keep_alive
        # a bug, not bad input: answer 500 so WCS sees it and retries
        logger.error("ingest.request.failed", extra={"path": pending.path[:256]}, exc_info=error)
        return Answer(500, b"internal error\n", TEXT), False

    def _send(self, out: list[bytes]) -> None:
        if self.transport is not None:  # else the client left; the hook was still handled
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _close(self) -> None:
        """Closes after the last answer; requests still in hand are handled, not answered."""
        self.closing = True
        for pending in self.queue:
            pending.answer.remove_done_callback(self._answered)
        self.queue.clear()
        if self.transport is not None:
            self.transport.close()

    @property
    def busy(self) -> bool:
        """True while a request is being answered or waits to be."""
        return bool(self.queue)

    def _check_idle(self) -> None:
        """Closes the connection after ``IDLE_TIMEOUT_S`` without data and without requests
        in hand; re-arms itself otherwise (one timer per connection, not one per read)."""
        due = self.last_active + IDLE_TIMEOUT_S
        if self.busy or due > self.loop.time():
            self.idle = self.loop.call_at(max(due, self.loop.time() + 1), self._check_idle)
        elif self.transport is not None:
            self.transport.close()

    def _fail(self, status: int, reason: bytes) -> None:
        """Answers a request that cannot be parsed, after the answers before it, and closes."""
        answer = self.loop.create_future()
        answer.set_result(Answer(status, reason, TEXT))
        self.queue.append(Pending(answer, False, False, "", time.perf_counter()))
        self.closing = True
        self._answered(answer)


def request_path(url: bytes) -> str:
    """The path of a request target; the common origin form without query needs no parser."""
    if url[:1] == b"/" and b"?" not in url and b"#" not in url:
        return url.decode("utf-8", "replace")
    return httptools.parse_url(url).path.decode("utf-8", "replace")


def response_bytes(answer: Answer, keep_alive: bool, head: bool) -> bytes:
    """The status line, headers and (unless HEAD) body of ``answer``."""
    if keep_alive and not answer.headers and not head:  # the common case: one formatting
        return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
            answer.status,
            REASONS.get(answer.status, b""),
            answer.content_type,
            len(answer.body),
            answer.body,
        )
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

    def connection(self) -> HttpConnection:
        """A new connection's protocol (called by the event loop for each accepted client)."""
        return HttpConnection(self.handle, self.limit, self.keep, self.connections, self.observe)

    async def start(self, sock: socket.socket) -> None:
        """Starts accepting on ``sock`` (a bound, listening ``socket.socket``)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.connection, sock=sock, backlog=2048)

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
