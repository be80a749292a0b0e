"""A live projector and a rebuild exclude each other, through a PostgreSQL advisory lock.

A rebuild replaces every projection table and its positions; a projector writing meanwhile
would have its batches wiped by the swap, or apply them twice after it. So each live
projector holds the lock *shared* (the members of one consumer group run together) and a
rebuild holds it *exclusive*; whoever comes second is refused at once with
:class:`ProjectionsBusyError`. The lock is a session lock on a connection of its own, so it
ends with the process however that ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# int64 from SHA-256("wcs-audit projections"): the advisory lock key of this database's projections
LOCK_KEY = 1905686420708934735


class ProjectionsBusyError(RuntimeError):
    """The other side (a rebuild, or a live projector) holds the projections lock."""


@contextlib.asynccontextmanager
async def projections_lock(engine: AsyncEngine, *, exclusive: bool) -> AsyncIterator[None]:
    """Holds the projections lock for the block: ``exclusive`` for a rebuild, shared for a
    live projector. Raises :class:`ProjectionsBusyError` if the other side holds it."""
    kind = "" if exclusive else "_shared"
    async with engine.connect() as conn:
        acquired = await conn.scalar(
            text(f"SELECT pg_try_advisory_lock{kind}(:key)"), {"key": LOCK_KEY}
        )
        await conn.commit()  # a session lock: it outlives the transaction, which must not idle
        if not acquired:
            holder = "a live projector is running" if exclusive else "a rebuild is running"
            raise ProjectionsBusyError(f"projections are busy: {holder}; stop it or wait")
        try:
            yield
        finally:
            await conn.scalar(text(f"SELECT pg_advisory_unlock{kind}(:key)"), {"key": LOCK_KEY})
            await conn.commit()
