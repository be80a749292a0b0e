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
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.metrics import IngestMetrics, SharedMetrics
from ingest.publish import Publisher
from ingest.receive import JSON, TEXT, Answer, HookReceiver, Request
from ingest.server import HttpServer
from ingest.spool import Spool
from ingest.topics import ensure_topics, max_record_bytes
from wcs_audit.heap import settle_heap
from wcs_audit.logs import configure_logging
from wcs_audit.settings import Settings
from wcs_audit.supervise import supervise

logger = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
GRACE_S = 10.0  # how long a stopping receiver finishes the requests in hand
SHARE_S = 1.0  # how often a worker copies its metrics for the others' scrapes


def utc_now_us() -> int:
    """Microseconds since the Unix epoch, from the server clock."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Worker:
    """One of several receiver processes on one port: its slot, and the run's directory where
    the workers share their metrics."""

    index: int
    metrics_dir: Path


class ReceiverApp:
    """``POST {any prefix}/{hook}`` plus ``GET /healthz``, ``/readyz``, ``/metrics``.

    Kafka clients and the spool are built by :meth:`start`, in the serving event loop.
    """

    def __init__(
        self,
        settings: Settings,
        clock_us: Callable[[], int] = utc_now_us,
        shared: Worker | None = None,
    ) -> None:
        self.settings = settings
        self.clock_us = clock_us
        self.metrics = IngestMetrics.create()
        self.shared = (
            None
            if shared is None
            else SharedMetrics(self.metrics.registry, shared.metrics_dir, shared.index)
        )
        self.receiver: HookReceiver | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._sharer: asyncio.Task[None] | None = None

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
            interval_s=settings.linger_ms / 1000,
            prepare=lambda: ensure_topics(settings),
        )
        await publisher.connect()
        self.receiver = HookReceiver(settings, publisher, self.metrics, self.clock_us)
        self._drainer = asyncio.create_task(publisher.drain_forever())
        if self.shared is not None:
            self._sharer = asyncio.create_task(share_forever(self.shared))
        logger.info(
            "ingest.started",
            extra={"topic": settings.topic, "direct": publisher.direct, "spooled": spool.depth},
        )

    async def stop(self) -> None:
        """Stops draining and flushes records in flight to Kafka (bounded wait)."""
        if self.receiver is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.receiver.publisher.close(self._drainer), 10)
        if self._sharer is not None:
            self._sharer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sharer
        if self.shared is not None:
            self.shared.close()
        logger.info("ingest.stopped")

    def answer(self, request: Request) -> Awaitable[Answer]:
        """The answer to one request, to await; it never raises for what a client sends."""
        if request.method in ("GET", "HEAD") and request.path in PROBES:
            return self.probe(request.path)
        assert self.receiver is not None, "start() the app before serving it"
        return self.receiver.receive(request)  # no coroutine of its own: one frame less per hook

    async def probe(self, path: str) -> Answer:
        """Health (process up), readiness (Kafka reachable or spool writable), metrics."""
        if path == "/metrics":
            metrics = (
                generate_latest(self.metrics.registry)
                if self.shared is None
                else self.shared.render()
            )
            return Answer(200, metrics, CONTENT_TYPE_LATEST.encode())
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


async def share_forever(shared: SharedMetrics) -> None:
    """Copies this worker's metrics for the other workers every ``SHARE_S`` until cancelled."""
    while True:
        await asyncio.sleep(SHARE_S)
        shared.write()


BATCH_BYTES = 256 * 1024  # many small hooks per produce request; a larger hook gets its own


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """The receiver's producer: every record acknowledged by all in-sync replicas, idempotent."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=max_record_bytes(settings),
        max_batch_size=BATCH_BYTES,
        request_timeout_ms=max(settings.produce_timeout_ms, 5000),
        client_id="wcs-audit-receiver",
    )


def create_app(
    settings: Settings, clock_us: Callable[[], int] = utc_now_us, shared: Worker | None = None
) -> ReceiverApp:
    """The receiver app for ``settings``; nothing connects until the server's lifespan starts.
    ``shared``: this process is one of several workers, whose metrics it merges."""
    return ReceiverApp(settings, clock_us, shared)


@contextlib.asynccontextmanager
async def receiving(
    settings: Settings,
    sock: socket.socket,
    clock_us: Callable[[], int] = utc_now_us,
    shared: Worker | None = None,
) -> AsyncIterator[ReceiverApp]:
    """Serves the receiver on ``sock`` for the duration of the block; on exit stops accepting,
    finishes the requests in hand and flushes Kafka (graceful, bounded)."""
    app = create_app(settings, clock_us, shared)
    await app.start()
    server = HttpServer(
        app.answer,
        settings.max_body_bytes,
        settings.rejected_keep_bytes,
        app.metrics.requests.observe,
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
    each with its own producer and its own spool (``<spool dir>/worker-<n>``); any of them
    answers ``/metrics`` for all (merged through a temporary directory of this run).
    """
    configure_logging(settings.log_level)
    sock = listening_socket(settings.http_host, settings.http_port)
    if settings.receiver_workers == 1:
        run_worker(settings, sock)
        return
    with tempfile.TemporaryDirectory(prefix="wcs-audit-metrics-") as metrics_dir:
        supervise_workers(settings, sock, Path(metrics_dir))


def run_worker(settings: Settings, sock: socket.socket, shared: Worker | None = None) -> None:
    """One receiver process serving ``sock`` until SIGINT/SIGTERM."""

    async def until_signalled() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        async with receiving(settings, sock, shared=shared):
            settle_heap()
            logger.info("ingest.listening", extra={"address": sock.getsockname()[:2]})
            await stopped.wait()

    uvloop.run(until_signalled())


def supervise_workers(settings: Settings, sock: socket.socket, metrics_dir: Path) -> None:
    """Forks the workers on the shared socket; each keeps its spool across restarts."""
    supervise(
        [
            (
                f"receiver-{index}",
                functools.partial(
                    run_worker,
                    settings.replace(spool_dir=settings.spool_path / f"worker-{index}"),
                    sock,
                    Worker(index, metrics_dir),
                ),
            )
            for index in range(settings.receiver_workers)
        ]
    )
