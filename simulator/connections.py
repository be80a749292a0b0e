"""A lean HTTP/1.1 client for plain-HTTP load: a pool of keep-alive asyncio protocols.

It exists because per-request cost decides how many hooks one process can send: aiohttp
spends ~400 µs of CPU per request here, this pool ~50 µs (no task, no response object,
no header dict per request; the request bytes are prebuilt). It speaks only what the load
needs: ``POST`` with ``Content-Length``, one request in flight per connection, answers with
``Content-Length`` or chunked bodies. Use aiohttp (``client="aiohttp"``) for anything else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

Done = Callable[[str], None]
"""Called once per request with the status code as text, or the name of the error."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: host, port and the path prefix the hook name is appended to."""

    host: str
    port: int
    prefix: str

    @classmethod
    def of(cls, base_url: str) -> Target:
        """Parses ``http://host:port/prefix``; raises ValueError for other schemes."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the lean client speaks plain http only: {base_url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))

    def request(self, hook: str, body: bytes, headers: bytes) -> bytes:
        """The bytes of ``POST <prefix>/<hook>`` carrying ``body``."""
        return (
            f"POST {self.prefix}/{hook} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n".encode()
            + headers
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


def answer_length(buffer: bytearray) -> tuple[int, int] | None:
    """``(status, bytes of the whole answer)`` once ``buffer`` holds a complete answer."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    status = int(head[9:12])
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        end = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : end if end >= 0 else len(head)])
        total = head_end + 4 + length
        return (status, total) if len(buffer) >= total else None
    if b"\r\ntransfer-encoding: chunked" in head:
        last = buffer.find(b"\r\n0\r\n\r\n", head_end)
        return (status, last + 7) if last >= 0 else None
    return status, head_end + 4


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.done: Done | None = None
        self.request = b""
        self.retried = False
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        self.pool.opened(self)

    def send(self, request: bytes, done: Done, retried: bool) -> None:
        assert self.transport is not None, "send only on a connected protocol"
        self.done, self.request, self.retried = done, request, retried
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        complete = answer_length(self.buffer)
        if complete is None:
            return
        status, length = complete
        del self.buffer[:length]
        done, self.done = self.done, None
        self.answered += 1
        if done is not None:
            done(str(status))
        self.pool.release(self)

    def connection_lost(self, exc: Exception | None) -> None:
        done, self.done = self.done, None
        self.pool.discard(self)
        if done is None:
            return
        if self.answered and not self.buffer and not self.retried:
            # The server closed an idle keep-alive connection as we reused it: the request
            # was never read, so it goes again on another connection (once).
            self.pool.submit(self.request, done, retried=True)
            return
        done(type(exc).__name__ if exc else "ConnectionClosed")


class Pool:
    """Up to ``size`` connections to ``target``; requests beyond them wait in FIFO order.

    :meth:`submit` never blocks and never fails: every request's ``done`` is called exactly
    once, with the status or the error name (a failed connection fails only its request).
    """

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.size = size
        self.idle: list[Connection] = []
        self.busy = 0
        self.waiting: deque[tuple[bytes, Done, bool]] = deque()
        self.opening = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, request: bytes, done: Done, retried: bool = False) -> None:
        if self.idle:
            self.busy += 1
            self.idle.pop().send(request, done, retried)
            return
        self.waiting.append((request, done, retried))
        self.grow()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: Connection(self), self.target.host, self.target.port
            )
        except OSError as error:
            self.opening -= 1
            if self.waiting:
                self.waiting.popleft()[1](type(error).__name__)
            self.grow()  # the next waiting request tries again (and fails fast if refused)
            return
        self.opening -= 1

    def grow(self) -> None:
        """Opens one more connection if requests wait and the pool has room."""
        if self.waiting and self.busy + self.opening + len(self.idle) < self.size:
            self.opening += 1
            task = asyncio.get_running_loop().create_task(self.open())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def opened(self, connection: Connection) -> None:
        self.busy += 1
        self.release(connection)

    def release(self, connection: Connection) -> None:
        """A connection finished its request (or just opened): give it the next one."""
        if self.waiting:
            connection.send(*self.waiting.popleft())
            return
        self.busy -= 1
        self.idle.append(connection)

    def discard(self, connection: Connection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)
        else:
            self.busy -= 1
        self.grow()

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()
        self.idle.clear()
