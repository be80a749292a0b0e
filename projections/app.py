"""The projector: a FastStream Kafka batch subscriber that writes the PostgreSQL read models.

:func:`create_app` is the one place its objects are built; :func:`run_projector` runs it with
a small HTTP endpoint for ``/healthz`` and ``/metrics`` until SIGTERM/SIGINT or a failed batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from projections.consume import ProjectorConfig, session_options
from projections.guard import ProjectionsBusyError, projections_lock
from projections.metrics import ProjectorMetrics
from projections.pipeline import BatchPipeline, Fault
from projections.positions import SeekToStoredPositions, fetched_ends
from projections.state import ProjectorState
from wcs_audit.heap import BATCH_YOUNG_THRESHOLD, settle_heap
from wcs_audit.logs import configure_logging
from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Projector:
    """A built projector; :meth:`start` joins the consumer group, :meth:`stop` leaves it."""

    broker: KafkaBroker
    engine: AsyncEngine
    pipeline: BatchPipeline
    metrics: ProjectorMetrics
    state: ProjectorState
    sweep_interval_s: float
    running: bool = field(default=False)
    sweeper: asyncio.Task[None] | None = field(default=None)
    exits: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        """Takes the projections lock (shared: raises ``ProjectionsBusyError`` while a
        rebuild runs), joins the consumer group and starts sweeping."""
        await self.exits.enter_async_context(projections_lock(self.engine, exclusive=False))
        await self.broker.start()
        self.sweeper = asyncio.create_task(self.pipeline.sweep_every(self.sweep_interval_s))
        self.running = True

    async def stop(self) -> None:
        """Stops sweeping and consuming (the batch in hand commits first), ends what is
        silent at the watermark, closes the pool."""
        self.running = False
        if self.sweeper is not None:
            self.sweeper.cancel()
            await asyncio.gather(self.sweeper, return_exceptions=True)
        await self.broker.stop()
        await self.pipeline.drain()
        try:
            await self.pipeline.finish()
        except Exception:  # the rows are right; only inferred ends wait for the next start
            logger.exception("projections.finish.failed")
        await self.exits.aclose()
        await self.engine.dispose()

    @property
    def healthy(self) -> bool:
        return self.running and self.state.error is None


def create_engine(settings: Settings) -> AsyncEngine:
    """The projector's async engine (psycopg 3), its sessions set by :func:`session_options`."""
    return create_async_engine(
        settings.database_url,
        pool_size=2,
        pool_pre_ping=True,
        connect_args={"options": session_options(settings)},
    )


async def keep_raw(message: Any) -> None:
    """FastStream's decoder, replaced: the handler reads the raw records itself, so
    FastStream must not JSON-decode every body of a batch first (half the CPU otherwise)."""


async def parse_first_headers(records: tuple[Any, ...], parse: Any) -> Any:
    """FastStream's batch parser, narrowed: it decodes every header of every record into
    dicts nobody here reads (5% of the projector's CPU). Only the first record is parsed, for
    the message's metadata; ``raw_message`` is the whole batch, which is what the handler
    reads and what ``nack`` rewinds by."""
    message = await parse(records[:1])
    message.raw_message = records
    return message


def create_app(settings: Settings, fault: Fault | None = None) -> Projector:
    """Builds broker, engine, subscriber and metrics from ``settings`` (nothing is started).

    The subscriber consumes ``settings.topic`` in group ``projector_group`` in batches, with
    ``AckPolicy.NACK_ON_ERROR``: the Kafka commit (informational) happens only after the
    PostgreSQL commit; the offsets that count are in ``projection_positions``.
    """
    engine = create_engine(settings)
    metrics = ProjectorMetrics.create()
    state = ProjectorState()
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        # FastStream's own "faststream" logger carries a plain-text handler; this one goes
        # through the JSON root handler. Per-batch "Received/Processed" lines are DEBUG.
        logger=logging.getLogger("projections.broker"),
        log_level=logging.DEBUG,
    )
    config = ProjectorConfig.from_settings(settings)
    subscribers: list[Any] = []
    pipeline = BatchPipeline(
        engine, config, metrics, state, fault=fault,
        interval_s=settings.projector_batch_interval_ms / 1000,
        ends_of=lambda keys: fetched_ends(subscribers[0].consumer, keys),
    )  # fmt: skip
    listener = SeekToStoredPositions(
        engine, settings.projector_group, lambda: subscribers[0].consumer, state, pipeline.drain
    )
    subscriber = broker.subscriber(
        settings.topic,
        group_id=settings.projector_group,
        batch=True,
        max_records=settings.projector_batch_size,
        batch_timeout_ms=settings.projector_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        listener=listener,
    )
    subscribers.append(subscriber)
    subscriber(pipeline.handle, parser=parse_first_headers, decoder=keep_raw)
    return Projector(
        broker=broker,
        engine=engine,
        pipeline=pipeline,
        metrics=metrics,
        state=state,
        sweep_interval_s=settings.projector_sweep_interval_s,
    )


async def serve_http(projector: Projector, host: str, port: int) -> asyncio.Server:
    """Serves ``GET /healthz`` (200 or 503) and ``GET /metrics`` (Prometheus text)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
            status, kind, body = http_response(projector, path.decode("latin-1"))
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host, port)


def http_response(projector: Projector, path: str) -> tuple[str, str, bytes]:
    """Status line, content type and body for ``path``."""
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(projector.metrics.registry)
    if path == "/healthz":
        if projector.healthy:
            return "200 OK", "text/plain", b"ok\n"
        return "503 Service Unavailable", "text/plain", b"stopped\n"
    return "404 Not Found", "text/plain", b"not found\n"


async def run_projector(settings: Settings) -> int:
    """Runs until SIGTERM/SIGINT (exit 0), a failed batch (exit 1, restart to resume) or, at
    start, a rebuild that holds the projections (exit 1, restart once it is done)."""
    configure_logging(settings.log_level)
    projector = create_app(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, projector.state.stopped.set)
    server = await serve_http(
        projector, settings.projector_metrics_host, settings.projector_metrics_port
    )
    try:
        await projector.start()
        settle_heap(BATCH_YOUNG_THRESHOLD)
        logger.info("projections.projector.started", extra={"topic": settings.topic})
        await projector.state.stopped.wait()
    except ProjectionsBusyError as error:
        logger.error("projections.projector.busy", extra={"error": str(error)})
        return 1
    finally:
        server.close()
        await projector.stop()
    if projector.state.error is not None:
        logger.error("projections.projector.failed", extra={"error": repr(projector.state.error)})
        return 1
    return 0
