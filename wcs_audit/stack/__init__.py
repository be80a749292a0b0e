"""The local stack: a real Kafka broker and a real PostgreSQL on loopback, without Docker."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass

from wcs_audit.settings import Settings
from wcs_audit.stack.kafka import answers_metadata, kafka_running, start_kafka, stop_kafka
from wcs_audit.stack.postgres import postgres_running, start_postgres, stop_postgres
from wcs_audit.stack.process import StackError

__all__ = ["StackError", "StackStatus", "stack_down", "stack_lock", "stack_status", "stack_up"]


@dataclass(frozen=True, slots=True)
class StackStatus:
    """What runs where; ``*_local`` says whether this stack started it."""

    kafka_bootstrap: str
    kafka_up: bool
    kafka_local: bool
    database_url: str
    postgres_up: bool
    postgres_local: bool


@contextlib.contextmanager
def stack_lock(settings: Settings) -> Iterator[None]:
    """One start or stop of the stack at a time per state directory. Two ``stack up`` at once
    (a terminal and a test session, say) once started two brokers on one data directory and
    corrupted its metadata log; now the second waits, then finds the services running."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "stack.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def stack_up(settings: Settings) -> dict[str, float]:
    """Starts (or reuses) Kafka and PostgreSQL; returns the seconds each took to be ready.

    Idempotent: what already answers is reused. With ``WCS_AUDIT_DATABASE_URL`` set, only the
    database is created there if missing. Raises :class:`StackError` on failure.
    """
    timings: dict[str, float] = {}
    with stack_lock(settings):
        started = time.perf_counter()
        start_kafka(settings)
        timings["kafka"] = time.perf_counter() - started
        started = time.perf_counter()
        start_postgres(settings)
        timings["postgres"] = time.perf_counter() - started
    return timings


def stack_down(settings: Settings) -> list[str]:
    """Stops what this stack started; returns the names of the services it stopped."""
    stopped = []
    with stack_lock(settings):
        if stop_kafka(settings):
            stopped.append("kafka")
        if settings.uses_local_postgres and stop_postgres(settings):
            stopped.append("postgres")
    return stopped


def stack_status(settings: Settings) -> StackStatus:
    """Probes both services (a few seconds at most when one is down)."""
    return StackStatus(
        kafka_bootstrap=settings.kafka_bootstrap,
        kafka_up=answers_metadata(settings.kafka_bootstrap),
        kafka_local=kafka_running(settings),
        database_url=settings.database_url,
        postgres_up=postgres_running(settings),
        postgres_local=settings.uses_local_postgres,
    )
