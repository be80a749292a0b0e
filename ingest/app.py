"""The receiver: built once from settings, served by :mod:`ingest.server`.

WCS may be given any restUrl prefix, so the route is "the last path segment"; besides hooks only
``GET /healthz``, ``/readyz`` and ``/metrics`` are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable

import uvloop
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.metrics import IngestMetrics
from ingest.publish import Publisher
from ingest.receive import JSON, TEXT, Answer, HookReceiver, Request
from ingest.server import HttpServer
from ingest.spool import Spool
from ingest.topics import ensure_topics, max_record_bytes
from wcs_audit.logs import configure_logging
from wcs_audit.settings import Settings
from wcs_audit.supervise import supervise

logger = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
GRACE_S = 10.0  # how long a stopping receiver finishes the requests in hand


def utc_now_us() -> int:
    """Microseconds since the Unix epoch, from the server clock."""
    return time.time_ns() // 1000


class ReceiverApp:
    """``POST {any prefix}/{hook}`` plus ``GET /healthz``, ``/readyz``, ``/metrics``.

    Kafka clients and the spool are built by :meth:`start`, in the serving event loop.
    """

    def __init__(self, settings: Settings, clock_us: Callable[[], int] = utc_now_us) -> None:
        self.settings = settings
        self.clock_us = clock_us
        self.metrics = IngestMetrics.create()
        self.receiver: HookReceiver | None = None
        self._drainer: asyncio.Task[None] | None = None

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

    async def answer(self, request: Request) -> Answer:
        """Answers one request; never raises for what a client sends."""
        if request.method in ("GET", "HEAD") and request.path in PROBES:
            return self.probe(request.path)
        assert self.receiver is not None, "start() the app before serving it"
        return await self.receiver.receive(request)

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


@contextlib.asynccontextmanager
async def receiving(
    settings: Settings, sock: socket.socket, clock_us: Callable[[], int] = utc_now_us
) -> AsyncIterator[ReceiverApp]:
    """Serves the receiver on ``sock`` for the duration of the block; on exit stops accepting,
    finishes the requests in hand and flushes Kafka (graceful, bounded)."""
    app = create_app(settings, clock_us)
    await app.start()
    server = HttpServer(
        app.answer,
        settings.max_body_bytes,
        settings.rejected_keep_bytes,
        app.metrics.request_seconds.observe,
    )
    try:
        await server.start(sock)
        yield app
    finally:
        await server.stop(GRACE_S)
        await app.stop()


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket that forked workers can share."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve(settings: Settings) -> None:
    """Runs the receiver on ``WCS_AUDIT_HTTP_HOST:PORT`` until SIGINT/SIGTERM (graceful).

    With ``WCS_AUDIT_RECEIVER_WORKERS`` > 1, that many processes share the listening socket,
    each with its own producer and its own spool (``<spool dir>/worker-<n>``).
    """
    configure_logging(settings.log_level)
    sock = listening_socket(settings.http_host, settings.http_port)
    if settings.receiver_workers == 1:
        run_worker(settings, sock)
    else:
        supervise_workers(settings, sock)


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """One receiver process serving ``sock`` until SIGINT/SIGTERM."""

    async def until_signalled() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        async with receiving(settings, sock):
            logger.info("ingest.listening", extra={"address": sock.getsockname()[:2]})
            await stopped.wait()

    uvloop.run(until_signalled())


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
