"""Hook bodies into ``hook_payloads``, each distinct body once.

A leg's keep-alives, most of the traffic, repeat one body every interval. Storing that body
with every hook made PostgreSQL parse it into ``jsonb`` again each time (a third of its CPU in
``bench.projector``) and store it again. ``hook_log`` now holds each hook's ``payload_id``
(:func:`projections.decode.payload_id_of`, a digest of the text), and ``hook_payloads`` each
text once; the view ``hook_events`` joins them back.

The projector remembers which payloads it has committed (:class:`StoredPayloads`) and sends
only the others. A payload it has not seen may be stored already (by another projector, or
before a restart), so those are written to skip what is there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.decode import Event, JsonDocument
from projections.stage import copy_new_rows
from projections.tables import hook_payloads

logger = logging.getLogger(__name__)

PAYLOAD_COLUMNS = (hook_payloads.c.payload_id, hook_payloads.c.payload)


class StoredPayloads:
    """Ids of the payloads known to be committed in ``hook_payloads`` (of one database).

    Only :meth:`remember` ids after their transaction committed: an id remembered from a
    transaction that rolled back would leave later hooks with that body pointing at nothing.
    For the same reason only a prune deletes payloads (:mod:`projections.prune`), and only
    while no projector runs: it holds the projections lock exclusive.

    Holds two generations of at most ``limit`` ids each (~90 bytes an id: ~18 MB at the
    default). When the recent one is full it becomes the older one, and the oldest is
    forgotten; an id found in the older generation moves back to the recent one. So the
    bodies still in use, a live leg's keep-alive body every interval, are never forgotten,
    however many bodies pass once. Forgetting costs only a write that finds the body there.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._recent: set[bytes] = set()
        self._older: set[bytes] = set()

    def unknown(self, events: Iterable[Event]) -> dict[bytes, JsonDocument]:
        """The payloads of ``events`` not known to be stored, by id (each once)."""
        unknown: dict[bytes, JsonDocument] = {}
        for event in events:
            key = event.payload_id
            if key in self._recent:
                continue
            if key in self._older:
                self._note(key)
            else:
                unknown[key] = event.payload
        return unknown

    def remember(self, ids: Iterable[bytes]) -> None:
        """Notes ``ids`` as stored (call once their transaction has committed)."""
        for key in ids:
            self._note(key)

    def _note(self, key: bytes) -> None:
        if len(self._recent) >= self.limit:
            self._older, self._recent = self._recent, set()
        self._recent.add(key)


async def insert_payloads(conn: AsyncConnection, payloads: dict[bytes, JsonDocument]) -> None:
    """Stores ``payloads`` (id -> JSON text) in ``hook_payloads``, skipping ids stored already
    (:func:`~projections.stage.copy_new_rows`): a plain COPY when the projector knows what it
    stored, the common case."""
    if not payloads:
        return
    inserted = await copy_new_rows(conn, hook_payloads, PAYLOAD_COLUMNS, sorted(payloads.items()))
    if len(inserted) < len(payloads):
        logger.debug("projections.payloads.stored_already", extra={"payloads": len(payloads)})
