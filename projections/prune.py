"""Prune: the audit log's hooks received before a cut-off go from PostgreSQL, with the bodies
no hook points at any more; the prune itself is recorded.

``hook_log`` gains a row for every hook and is kept for good by default (about 0.7 KB a hook
with its body, see docs/operations.md). :func:`prune` deletes the hooks received before
``before`` in chunks, oldest first, each chunk its own transaction: progress shows, and an
interrupted prune keeps what it deleted (run it again to finish). Then, in one transaction,
it deletes every body of ``hook_payloads`` that no row of ``hook_log`` points at (one read of
each table), and adds a row to ``audit_log_prunes``.

What stays: the read models (sessions, streams, calls, …: what the hooks built, and what
billing reads), and Kafka's copy of every hook (a rebuild restores the pruned hooks Kafka
still holds).

A live projector remembers which bodies it stored and does not send them again
(:class:`~projections.payloads.StoredPayloads`): a body deleted under it would leave its next
hooks with that body pointing at nothing. So a prune holds the projections lock exclusive, as
a rebuild does (:mod:`projections.guard`): it is refused while a projector runs, and a
projector started meanwhile is refused (``wcs-audit run`` starts it again until the prune is
over). Kafka holds the hooks that arrive meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from projections.guard import projections_lock
from projections.progress import Progress, ProgressSink
from projections.tables import audit_log_prunes
from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)

CHUNK = 50_000  # hooks deleted per transaction

COUNT_HOOKS = text("SELECT count(*) FROM hook_log WHERE received_at < :before")
# the bodies no hook received from ``before`` on points at: those the prune will delete
COUNT_BODIES = text(
    "SELECT count(*) FROM hook_payloads p WHERE NOT EXISTS (SELECT 1 FROM hook_log l "
    "WHERE l.payload_id = p.payload_id AND l.received_at >= :before)"
)
# the oldest ``chunk`` hooks from ``since`` on, by their row addresses; each chunk starts
# where the last ended, past the index entries of the rows deleted before (still in the index
# until a vacuum): from the start every time, a prune of 1,000,000 hooks took 3.2 times as long
# as one DELETE statement
DELETE_HOOKS = text(
    "WITH gone AS (DELETE FROM hook_log WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM hook_log WHERE received_at >= :since AND received_at < :before "
    "ORDER BY received_at LIMIT :chunk)) RETURNING received_at) "
    "SELECT count(*), max(received_at) FROM gone"
)
DELETE_BODIES = text(
    "DELETE FROM hook_payloads p "
    "WHERE NOT EXISTS (SELECT 1 FROM hook_log l WHERE l.payload_id = p.payload_id)"
)


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune deleted (or, for a dry run, would delete)."""

    hooks: int
    payloads: int
    seconds: float


async def count_prunable(conn: AsyncConnection, before: datetime) -> Pruned:
    """The hooks received before ``before``, and the bodies no later hook points at: what
    :func:`prune` would delete."""
    started = time.perf_counter()
    hooks = (await conn.execute(COUNT_HOOKS, {"before": before})).scalar_one()
    bodies = (await conn.execute(COUNT_BODIES, {"before": before})).scalar_one()
    return Pruned(hooks, bodies, time.perf_counter() - started)


async def delete_hooks(
    conn: AsyncConnection, before: datetime, progress: ProgressSink, chunk: int
) -> int:
    """Deletes the hooks received before ``before``, ``chunk`` at a time, committing each;
    returns how many."""
    started = time.perf_counter()
    total = (await conn.execute(COUNT_HOOKS, {"before": before})).scalar_one()
    await conn.commit()
    deleted, since = 0, datetime.min.replace(tzinfo=UTC)
    while True:
        chunk_of = {"since": since, "before": before, "chunk": chunk}
        gone, last = (await conn.execute(DELETE_HOOKS, chunk_of)).one()
        await conn.commit()
        if not gone:
            return deleted
        since = last
        deleted += gone
        progress(Progress(deleted, max(total, deleted), time.perf_counter() - started))
        logger.info("projections.prune.hooks", extra={"deleted": deleted, "total": total})


async def prune(
    settings: Settings,
    before: datetime,
    progress: ProgressSink,
    *,
    dry_run: bool = False,
    chunk: int = CHUNK,
) -> Pruned:
    """Deletes the hooks received before ``before`` (timezone-aware) and the bodies no hook
    points at any more, and records the prune in ``audit_log_prunes``; with ``dry_run``,
    only counts them. Returns what it deleted (or would).

    Raises ``ProjectionsBusyError`` at once while a live projector or a rebuild runs (a dry
    run only reads, and runs beside them), and any database error (what was committed by then
    stays deleted; running it again finishes)."""
    started = time.perf_counter()
    engine = create_async_engine(settings.database_url)
    try:
        if dry_run:
            async with engine.connect() as conn:
                return await count_prunable(conn, before)
        async with projections_lock(engine, exclusive=True), engine.connect() as conn:
            hooks = await delete_hooks(conn, before, progress, chunk)
            payloads = (await conn.execute(DELETE_BODIES)).rowcount
            await conn.execute(
                audit_log_prunes.insert().values(
                    received_before=before, hooks=hooks, payloads=payloads
                )
            )
            await conn.commit()
    finally:
        await engine.dispose()
    result = Pruned(hooks, payloads, time.perf_counter() - started)
    logger.info(
        "projections.prune.done",
        extra={"received_before": before.isoformat(), "hooks": hooks, "payloads": payloads},
    )
    return result
