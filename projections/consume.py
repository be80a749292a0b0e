"""One Kafka batch -> one PostgreSQL transaction: events, read models and positions together.

Exactly-once effect: the batch's rows and the partitions' next offsets commit in the same
transaction; an event already stored (same ``event-id``) is skipped, so a batch that is read
again after a crash, a rebalance or a redelivery changes nothing. On partition assignment the
consumer seeks to the offsets stored in PostgreSQL (``projections.positions``); Kafka's
committed offsets are informational only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.batch import BatchRows, batch_rows
from projections.decode import BodyCache, Event, RecordLike, Rejected, Secrets, decode_record
from projections.keepalives import project_keepalives
from projections.merge import fold
from projections.payloads import StoredPayloads, insert_payloads
from projections.positions import (
    TopicPartitionKey,
    behind_through,
    positions_of,
    save_positions,
)
from projections.recompute import (
    close_silent,
    pair_bug_reports,
    recompute_call_history,
    recount_sessions,
)
from projections.rows import (
    CALLS,
    DATA_MESSAGES,
    SESSIONS,
    STREAMS,
    suspected_retries,
)
from projections.tables import (
    bug_reports,
    calls,
    client_log_pushes,
    data_messages,
    rejected_records,
    session_debug,
    sessions,
    streams,
)
from projections.upsert import (
    insert_events,
    insert_new,
    stored_copies,
    upsert_model,
    watermark,
)
from wcs_audit.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    """What :func:`apply_batch` needs from the settings."""

    projection: str
    retry_window: timedelta
    keepalive_timeout_s: float
    stream_silence_s: float
    session_silence_s: float
    secrets: Secrets

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectorConfig:
        return cls(
            projection=settings.projector_group,
            retry_window=timedelta(seconds=settings.projector_retry_window_s),
            keepalive_timeout_s=(
                settings.projector_keepalive_interval_s * settings.projector_keepalive_misses
            ),
            stream_silence_s=settings.projector_stream_silence_s,
            session_silence_s=settings.projector_session_silence_s,
            secrets=Secrets.of(settings.secret_fields),
        )


def session_options(settings: Settings) -> str:
    """libpq ``options`` for the sessions that apply batches (projector and rebuild).

    - ``synchronous_commit`` is ``settings.projector_synchronous_commit``, ``off`` by
      default: a commit then returns before PostgreSQL has flushed its WAL. A crash of
      PostgreSQL (or of its machine) can lose the last commits, at most about 0.6 s of them
      (3 x ``wal_writer_delay``), never part of one. Each lost batch takes its Kafka
      positions with it, since they are in the same transaction, so the projector applies
      those records again from Kafka when it reconnects: nothing is lost or applied twice.
      ``bench.projector`` measured 4-16 % more events/s this way (4 alternating pairs).
    - ``jit`` is off. A batch's statements are many short index probes, which PostgreSQL's
      planner costs higher as the tables grow. With 2,000,000 rows in ``hook_log`` (7
      minutes of hooks at 5,000/s) the retry lookup of a 5,000-record batch passed
      ``jit_above_cost`` and compiled for 15-17 ms, on a query that takes 56-68 ms without
      (EXPLAIN ANALYZE, twice each); with 200,000 rows it stayed below. The larger the audit
      log, the smaller the batch that pays it, every time.
    """
    return f"-c synchronous_commit={settings.projector_synchronous_commit} -c jit=off"


@dataclass(slots=True)
class BatchResult:
    """What one batch did: counts of records by outcome."""

    records: int = 0
    applied: int = 0
    retries: int = 0
    duplicates: int = 0
    rejected: int = 0
    positions: dict[TopicPartitionKey, int] = field(default_factory=dict)
    ends: dict[TopicPartitionKey, int] = field(default_factory=dict)  # as far as known
    watermark: datetime | None = None  # the latest receive time stored, after this batch
    payload_ids: list[bytes] = field(default_factory=list)  # stored: remember once committed


def first_of_each_id(events: Iterable[Event]) -> list[Event]:
    """``events`` without later records that repeat an event id (a re-sent record)."""
    seen: set[Any] = set()
    unique = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


async def store_events(
    conn: AsyncConnection,
    events: Sequence[Event],
    window: timedelta,
    result: BatchResult,
    payloads: StoredPayloads,
) -> list[Event]:
    """Stores ``events`` in ``hook_log``, and their payloads not in ``payloads`` in
    ``hook_payloads``; returns the new ones that are not retries."""
    if not events:
        return []
    copies = await stored_copies(conn, events, window)
    stored_ids = {event_id for found in copies.values() for event_id, _ in found}
    new = [e for e in first_of_each_id(events) if e.event_id not in stored_ids]
    prior = {h: [t for _, t in found] for h, found in copies.items()}
    retries = suspected_retries(new, prior, window)
    inserted = await insert_events(conn, new, retries)
    unknown = payloads.unknown(new)
    await insert_payloads(conn, unknown)
    result.payload_ids = list(unknown)
    result.duplicates = len(events) - len(inserted)
    result.retries = len(retries & inserted)
    return [e for e in new if e.event_id in inserted and e.event_id not in retries]


async def project_rows(conn: AsyncConnection, rows: BatchRows) -> None:
    """Writes the domain rows of one batch (already free of duplicates and retries)."""
    await upsert_model(conn, sessions, SESSIONS, fold(SESSIONS, rows.sessions))
    await upsert_model(conn, streams, STREAMS, fold(STREAMS, rows.streams))
    new_leg_sessions = await project_keepalives(conn, rows.keepalive_sessions, rows.keepalive_legs)
    await upsert_model(conn, calls, CALLS, fold(CALLS, rows.calls))
    await upsert_model(conn, data_messages, DATA_MESSAGES, fold(DATA_MESSAGES, rows.data_messages))
    await insert_new(conn, bug_reports, rows.bug_reports)
    await insert_new(conn, client_log_pushes, rows.client_log_pushes)
    await insert_new(conn, session_debug, rows.session_debug)
    await recount_sessions(conn, rows.count_sessions | new_leg_sessions)
    await recompute_call_history(conn, rows.hold_calls)
    await pair_bug_reports(conn, rows.bug_sessions)


async def store_rejected(conn: AsyncConnection, rejected: Sequence[Rejected]) -> None:
    """Keeps undecodable records in ``rejected_records`` (the projector's dead letters)."""
    rows = [
        {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "error": r.error,
            "headers": r.headers,
            "value": r.value,
        }
        for r in rejected
    ]
    await insert_new(conn, rejected_records, rows)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch decoded, with the domain rows it gives if none of its events is a duplicate
    or a retry (the common case; otherwise they are recomputed when that is known)."""

    records: int
    positions: dict[TopicPartitionKey, int]
    through: dict[TopicPartitionKey, datetime]  # the newest receive time per partition
    events: list[Event]
    unique: int
    rejected: list[Rejected]
    rows: BatchRows

    def oldest_received_at(self) -> datetime | None:
        """The receive time of the batch's oldest hook (None without events)."""
        return min((event.received_at for event in self.events), default=None)


def prepare_batch(
    records: Sequence[RecordLike], config: ProjectorConfig, bodies: BodyCache | None = None
) -> PreparedBatch:
    """Decodes ``records`` (reusing ``bodies``) and derives their rows (no I/O, no clock)."""
    decoded = [decode_record(r, config.secrets, bodies) for r in records]
    return assemble_batch(records, decoded, config)


def assemble_batch(
    records: Sequence[RecordLike], decoded: Sequence[Event | Rejected], config: ProjectorConfig
) -> PreparedBatch:
    """The prepared batch of ``records``, given each one's :func:`decode_record` result."""
    events = [d for d in decoded if isinstance(d, Event)]
    unique = first_of_each_id(events)
    return PreparedBatch(
        records=len(records),
        positions=positions_of(records),
        through=received_through(records, decoded),
        events=events,
        unique=len(unique),
        rejected=[d for d in decoded if isinstance(d, Rejected)],
        rows=batch_rows(unique, config.secrets.fields),
    )


def received_through(
    records: Sequence[RecordLike], decoded: Sequence[Event | Rejected]
) -> dict[TopicPartitionKey, datetime]:
    """The newest receive time among the events of each partition of ``records``."""
    through: dict[TopicPartitionKey, datetime] = {}
    for record, item in zip(records, decoded, strict=True):
        if isinstance(item, Event):
            key = (record.topic, record.partition)
            newest = through.get(key)
            if newest is None or item.received_at > newest:
                through[key] = item.received_at
    return through


async def apply_prepared(
    conn: AsyncConnection,
    batch: PreparedBatch,
    config: ProjectorConfig,
    *,
    payloads: StoredPayloads | None = None,
    close: bool = True,
    ends: Mapping[TopicPartitionKey, int] | None = None,
) -> BatchResult:
    """Applies a prepared batch inside the caller's transaction, positions included (with
    the partitions' end offsets ``ends``, as far as they are known); with ``close``, then
    ends what is silent at the batch's watermark (see :func:`close_silent_at`). Payloads in
    ``payloads`` are taken as stored; the caller remembers ``payload_ids`` of the result
    there once the transaction has committed.

    Idempotent: applying the same records again changes nothing but ``updated_at`` of the
    positions. Raises whatever the database raises; the caller must roll back then. An
    inferred end is the row's own last event time and a later event clears it, so when the
    silent rows are ended (every batch, or every few seconds by a sweep) changes only how soon
    an end shows, never the rows once the sweep has run.
    """
    result = BatchResult(records=batch.records, positions=batch.positions, ends=dict(ends or {}))
    known = StoredPayloads() if payloads is None else payloads
    fresh = await store_events(conn, batch.events, config.retry_window, result, known)
    rows = batch.rows if len(fresh) == batch.unique else batch_rows(fresh, config.secrets.fields)
    await project_rows(conn, rows)
    await store_rejected(conn, batch.rejected)
    result.watermark = await watermark(conn)
    await save_positions(
        conn, config.projection, result.positions, ends=result.ends, through=batch.through
    )
    if close and result.watermark is not None:
        await close_silent_at(conn, result.watermark, config)
    result.applied, result.rejected = len(fresh), len(batch.rejected)
    return result


async def close_silent_at(conn: AsyncConnection, now: datetime, config: ProjectorConfig) -> None:
    """Ends the streams and sessions silent for longer than their timeouts at time ``now``,
    or earlier: no later than the newest event applied from a partition that is behind
    (:func:`behind_through`). While the projectors catch up, partitions advance at different
    speeds in event time, and a leg of a partition that is behind is not silent just because
    another partition is ahead."""
    floor = await behind_through(conn, config.projection)
    if floor is not None and floor < now:
        now = floor
    await close_silent(
        conn, now, config.keepalive_timeout_s, config.stream_silence_s, config.session_silence_s
    )


async def apply_batch(
    conn: AsyncConnection,
    records: Sequence[RecordLike],
    config: ProjectorConfig,
    bodies: BodyCache | None = None,
    *,
    ends: Mapping[TopicPartitionKey, int] | None = None,
    payloads: StoredPayloads | None = None,
) -> BatchResult:
    """:func:`prepare_batch` then :func:`apply_prepared` (rebuild and tests use this)."""
    batch = prepare_batch(records, config, bodies)
    return await apply_prepared(conn, batch, config, payloads=payloads, ends=ends)
