"""The receiver's ASGI application: built once from settings, run by uvicorn.

A raw ASGI callable rather than a framework router: WCS may be given any restUrl prefix, so the
route is "the last path segment", and every microsecond here is in WCS's call path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.metrics import IngestMetrics
from ingest.publish import Publisher
from ingest.receive import JSON, TEXT, Answer, HookReceiver, Request
from ingest.spool import Spool
from ingest.topics import ensure_topics, max_record_bytes
from wcs_audit.logs import configure_logging
from wcs_audit.settings import Settings
from wcs_audit.supervise import supervise

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def utc_now_us() -> int:
    """Microseconds since the Unix epoch, from the server clock."""
    return time.time_ns() // 1000


class ReceiverApp:
    """ASGI app: ``POST {any prefix}/{hook}`` plus ``GET /healthz``, ``/readyz``, ``/metrics``.

    Kafka clients and the spool are built in the lifespan (they need the server's event loop).
    """

    def __init__(self, settings: Settings, clock_us: Callable[[], int] = utc_now_us) -> None:
        self.settings = settings
        self.clock_us = clock_us
        self.metrics = IngestMetrics.create()
        self.receiver: HookReceiver | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    # -- lifespan -----------------------------------------------------------------------

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as error:
                    logger.exception("ingest.startup_failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Opens the spool, connects to Kafka (or starts spooling), starts the drainer."""
        settings = self.settings
        spool = Spool(settings.spool_path, settings.spool_max_bytes)
        spool.open()
        publisher = Publisher(
            lambda: make_producer(settings),
            spool,
            self.metrics,
            timeout_s=settings.produce_timeout_ms / 1000,
            clock=time.perf_counter,
            prepare=lambda: ensure_topics(settings),
        )
        await publisher.connect()
        self.receiver = HookReceiver(settings, publisher, self.metrics, self.clock_us)
        self._drainer = asyncio.create_task(publisher.drain_forever())
        logger.info(
            "ingest.started",
            extra={"topic": settings.topic, "direct": publisher.direct, "spooled": spool.depth},
        )

    async def stop(self) -> None:
        """Stops draining and flushes records in flight to Kafka (bounded wait)."""
        if self.receiver is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.receiver.publisher.close(self._drainer), 10)
        logger.info("ingest.stopped")

    # -- http ---------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        if method in ("GET", "HEAD") and path in ("/healthz", "/readyz", "/metrics"):
            await respond(send, self.probe(path))
            return
        assert self.receiver is not None, "the lifespan must have started the receiver"
        request = await read_request(
            scope, receive, self.settings.max_body_bytes, self.settings.rejected_keep_bytes
        )
        if request is None:
            return  # WCS hung up mid-body: nothing to record, nobody to answer; it will retry
        answer = await self.receiver.receive(request)
        await respond(send, answer)
        self.metrics.request_seconds.observe(time.perf_counter() - started)

    def probe(self, path: str) -> Answer:
        """Health (process up), readiness (Kafka reachable or spool writable), metrics."""
        if path == "/metrics":
            return Answer(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode())
        if path == "/healthz":
            return Answer(200, b'{"status":"ok"}', JSON)
        publisher = self.receiver.publisher if self.receiver else None
        if publisher is None:
            return Answer(503, b"starting\n", TEXT)
        ready = publisher.direct or not publisher.spool.refusing
        body = (
            f'{{"kafka":"{"direct" if publisher.direct else "spooling"}",'
            f'"spool_depth":{publisher.spool.depth}}}'
        ).encode()
        return Answer(200 if ready else 503, body, JSON)


async def read_request(scope: Scope, receive: Receive, limit: int, keep: int) -> Request | None:
    """Reads the body up to ``limit`` bytes; past it, keeps only the first ``keep`` bytes.

    Returns None when the client disconnects before the body is complete.
    """
    content_type: bytes | None = None
    authorization: list[bytes] = []
    declared = -1
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"authorization":
            authorization.append(value)
        elif name == b"content-length" and value.isdigit():
            declared = int(value)
    chunks: list[bytes] = []
    size = 0
    too_large = declared > limit
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        too_large = too_large or size > limit
        if not too_large or size - len(chunk) < keep:
            chunks.append(chunk)
        more = message.get("more_body", False)
    data = b"".join(chunks)
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        remote_addr=client[0] if client else "",
        content_type=content_type,
        authorization=authorization,
        body=None if too_large else data,
        body_prefix=data[:keep],
    )


async def respond(send: Send, answer: Answer) -> None:
    headers = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


BATCH_BYTES = 256 * 1024  # many small hooks per produce request; a larger hook gets its own


BATCH_BYTES = 256 * 1024  # many small hooks per produce request; a larger hook gets its own


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """The receiver's producer: every record acknowledged by all in-sync replicas, idempotent."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        max_request_size=max_record_bytes(settings),
        max_batch_size=BATCH_BYTES,
        request_timeout_ms=max(settings.produce_timeout_ms, 5000),
        client_id="wcs-audit-receiver",
    )


def create_app(settings: Settings, clock_us: Callable[[], int] = utc_now_us) -> ReceiverApp:
    """The receiver app for ``settings``; nothing connects until the server's lifespan starts."""
    return ReceiverApp(settings, clock_us)


def serve(settings: Settings) -> None:
    """Runs the receiver on ``WCS_AUDIT_HTTP_HOST:PORT`` until SIGINT/SIGTERM (graceful).

    With ``WCS_AUDIT_RECEIVER_WORKERS`` > 1, that many processes share the listening socket,
    each with its own producer and its own spool (``<spool dir>/worker-<n>``).
    """
    configure_logging(settings.log_level)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.http_host, settings.http_port))
    sock.listen(2048)
    if settings.receiver_workers == 1:
        run_worker(settings, sock)
    else:
        supervise_workers(settings, sock)


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """One receiver process serving ``sock`` until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
        server_header=False,
        date_header=False,
        backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])


def supervise_workers(settings: Settings, sock: socket.socket) -> None:
    """Forks the workers on the shared socket; each keeps its spool across restarts."""
    supervise(
        [
            (
                f"receiver-{index}",
                functools.partial(
                    run_worker,
                    settings.replace(spool_dir=settings.spool_path / f"worker-{index}"),
                    sock,
                ),
            )
            for index in range(settings.receiver_workers)
        ]
    )
