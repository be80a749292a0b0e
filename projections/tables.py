"""The projections' schema as SQLAlchemy Core tables; Alembic's ``target_metadata``.

DDL reaches a database only through the migrations in ``migrations/versions``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

OPEN = "status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"
"""Rows of ``sessions`` and ``streams`` that have not ended, really or by inference."""

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", Text, primary_key=True, comment="consumer group that owns the offset"),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column(
        "next_offset",
        BigInteger,
        nullable=False,
        comment="offset of the next record to apply (Kafka's committed-offset convention)",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "end_offset",
        BigInteger,
        comment="the partition's end offset as the consumer last knew it; "
        "next_offset < end_offset: the projection is behind",
    ),
    Column(
        "received_through",
        DateTime(timezone=True),
        comment="the newest receive time among the hooks applied from the partition",
    ),
    comment="Kafka positions of each projection, written in the same transaction as its rows",
)


def _ts(name: str, comment: str | None = None, *args: Any, **kwargs: Any) -> Column[Any]:
    """A ``timestamptz`` column (microsecond precision, as PostgreSQL stores it)."""
    return Column(name, DateTime(timezone=True), *args, comment=comment, **kwargs)


def _status_columns(prefix: str = "") -> list[Column[Any]]:
    """The status group: the status chosen by precedence key (rank, at, event) and its info."""
    return [
        Column(f"{prefix}status", Text),
        Column(f"{prefix}status_rank", SmallInteger, comment="0 request, 1 active, 2 terminal"),
        _ts(f"{prefix}status_at", "time of the event that set the status"),
        Column(f"{prefix}status_event", Uuid, comment="event that set the status"),
    ]


ENDED_AT = "CASE WHEN status_rank = 2 THEN status_at ELSE inferred_end_at END"
END_STATUS = (
    "CASE WHEN status_rank = 2 THEN status WHEN inferred_end_at IS NOT NULL THEN 'TIMED_OUT' END"
)
END_INFO = "CASE WHEN status_rank = 2 THEN info ELSE inferred_reason END"


def _ended_columns(start: str) -> list[Column[Any]]:
    """Generated end columns: a real terminal status wins over an inferred end."""
    return [
        _ts("inferred_end_at", "set when silence closed the row; cleared by a later event"),
        Column("inferred_reason", Text),
        _ts(
            "ended_at",
            "terminal status time, else inferred end",
            Computed(ENDED_AT, persisted=True),
        ),
        Column("end_status", Text, Computed(END_STATUS, persisted=True)),
        Column("end_info", Text, Computed(END_INFO, persisted=True)),
        Column(
            "end_inferred",
            Boolean,
            Computed(
                "status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NOT NULL", persisted=True
            ),
        ),
        Column(
            "duration_s",
            Numeric,
            Computed(f"EXTRACT(EPOCH FROM ({ENDED_AT}) - {start})", persisted=True),
            comment=f"ended_at - {start}, seconds",
        ),
    ]


hook_log = Table(
    "hook_log",
    metadata,
    Column("event_id", Uuid, primary_key=True, comment="UUIDv7 minted by the receiver"),
    Column("hook", Text, nullable=False),
    Column("known", Boolean, nullable=False),
    _ts("received_at", nullable=False),
    Column("node_id", Text),
    Column("app", Text, comment="appKey"),
    Column("session_id", Text),
    Column("media_session_id", Text),
    Column("call_id", Text),
    Column("operation_id", Text),
    Column("status", Text),
    Column("remote_addr", Text),
    Column(
        "payload_id",
        LargeBinary,
        nullable=False,
        comment="the hook body's key in hook_payloads (a digest of its text)",
    ),
    Column("body_hash", Text, nullable=False),
    Column(
        "suspected_retry",
        Boolean,
        nullable=False,
        comment="same hook and body hash seen within the retry window: kept, not projected",
    ),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    # a session's hooks in time order: operators' timelines and the retry lookup
    Index(None, "session_id", "received_at"),
    # the retry lookup of hooks without a session (rare: no index entry for the others)
    Index(None, "body_hash", "received_at", postgresql_where=text("session_id IS NULL")),
    Index(None, "received_at"),
    Index(None, "call_id", postgresql_where=text("call_id IS NOT NULL")),
    comment=(
        "Audit log: one row per hook, in the order Kafka delivered them; its body is in "
        "hook_payloads (read both through the view hook_events)"
    ),
)

hook_payloads = Table(
    "hook_payloads",
    metadata,
    Column("payload_id", LargeBinary, primary_key=True, comment="a 16-byte digest of the text"),
    Column("payload", JSONB, nullable=False, comment="a hook body, secret values redacted"),
    comment=(
        "Each distinct hook body once (a leg's keep-alives repeat one body every interval); "
        "rows of hook_log point here by payload_id"
    ),
)

audit_log_prunes = Table(
    "audit_log_prunes",
    metadata,
    Column("prune_id", BigInteger, Identity(), primary_key=True),
    Column("pruned_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _ts("received_before", "hooks received before this time were deleted", nullable=False),
    Column("hooks", BigInteger, nullable=False, comment="rows deleted from hook_log"),
    Column(
        "payloads",
        BigInteger,
        nullable=False,
        comment="bodies deleted from hook_payloads (no hook pointed at them any more)",
    ),
    comment=(
        "Each prune of the audit log (wcs-audit projections prune). The read models and "
        "Kafka's copy were kept; a rebuild restores the hooks Kafka still holds"
    ),
)

sessions = Table(
    "sessions",
    metadata,
    Column("node_id", Text, primary_key=True),
    Column("session_id", Text, primary_key=True),
    Column("app", Text),
    Column("client_version", Text),
    Column("client_os_version", Text),
    Column("client_browser_version", Text),
    Column("media_providers", ARRAY(Text)),
    Column("custom", JSONB, comment="connect custom data, secret fields removed"),
    Column("sip_login", Text),
    Column("sip_domain", Text),
    _ts("attrs_at", "time of the latest event that carried attributes"),
    Column("registration_status", Text),
    Column("registration_status_rank", SmallInteger),
    _ts("registration_status_at"),
    Column("registration_status_event", Uuid),
    _ts("connect_requested_at", "first connect hook"),
    _ts("connected_at", "first ESTABLISHED"),
    *_status_columns(),
    Column("info", Text),
    *_ended_columns("connected_at"),
    Column("debug_status", Text),
    Column("debug_status_rank", SmallInteger),
    _ts("debug_status_at"),
    Column("debug_status_event", Uuid),
    Column("debug_on", Boolean, Computed("debug_status IN ('start', 'STARTED')", persisted=True)),
    Column("streams_count", Integer, nullable=False, server_default="0"),
    Column("calls_count", Integer, nullable=False, server_default="0"),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    # the open rows, for the silence sweep; not last_seen_at, so keep-alives update in
    # place (HOT, migration 0004)
    Index(None, "status_rank", postgresql_where=text(OPEN)),
    comment="One row per WCS session (node, sessionId)",
    postgresql_with={"fillfactor": 70},  # room for in-place keep-alive updates
)

streams = Table(
    "streams",
    metadata,
    Column("media_session_id", Text, primary_key=True),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    Column("name", Text),
    Column("role", Text, comment="publisher or player"),
    Column("media_provider", Text),
    Column("audio_codec", Text),
    Column("video_codec", Text),
    Column("width", Integer),
    Column("height", Integer),
    Column("record", Boolean),
    _ts("attrs_at"),
    _ts("created_at", "createDate of the leg"),
    _ts("requested_at", "publishStream / playStream"),
    _ts("stop_requested_at", "unPublishStream / stopStream"),
    _ts("started_at", "first PUBLISHING / PLAYING"),
    *_status_columns(),
    Column("info", Text),
    *_ended_columns("started_at"),
    Column("keepalive_count", Integer, nullable=False, server_default="0"),
    _ts("last_keepalive_at"),
    Column("snapshots_requested", Integer, nullable=False, server_default="0"),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    Index(None, "session_id"),
    Index(None, "name"),
    # the open rows, for the silence sweep; not last_seen_at, so keep-alives update in
    # place (HOT, migration 0004)
    Index(None, "status_rank", postgresql_where=text(OPEN)),
    comment="One row per publish or play leg (mediaSessionId)",
    postgresql_with={"fillfactor": 70},  # room for in-place keep-alive updates
)

calls = Table(
    "calls",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    Column("direction", Text, comment="incoming or outgoing"),
    Column("caller", Text),
    Column("callee", Text),
    Column("visible_name", Text),
    Column("media_provider", Text),
    Column("transfer_target", Text),
    _ts("attrs_at"),
    _ts("created_at", "call / OnCallEvent"),
    _ts("ring_at", "first RING"),
    _ts("established_at", "first ESTABLISHED"),
    _ts("hangup_at", "first hangup hook"),
    *_status_columns(),
    Column("info", Text),
    Column("sip_status", Integer),
    _ts("ended_at", None, Computed("CASE WHEN status_rank = 2 THEN status_at END", persisted=True)),
    Column(
        "talk_duration_s",
        Numeric,
        Computed(
            "EXTRACT(EPOCH FROM (CASE WHEN status_rank = 2 THEN status_at END) - established_at)",
            persisted=True,
        ),
    ),
    Column("hold_count", Integer, nullable=False, server_default="0"),
    Column("held_s", Numeric, nullable=False, server_default="0"),
    Column("transfers_requested", Integer, nullable=False, server_default="0"),
    *_status_columns("transfer_"),
    Column("transfer_info", Text),
    Column("dtmf_sent", Text, comment="digits of sendDtmf hooks in time order"),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    Index(None, "session_id"),
    comment="One row per SIP call (callId)",
)

bug_reports = Table(
    "bug_reports",
    metadata,
    Column("event_id", Uuid, primary_key=True, comment="event id of the submitBugReport hook"),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    _ts("submitted_at", nullable=False),
    Column("type", Text),
    Column("text", Text),
    Column("report", JSONB, nullable=False, comment="the reported object, secrets removed"),
    Column("filename", Text, comment="from the BugReportStatusEvent that followed"),
    _ts("status_at"),
    Index(None, "session_id"),
    comment="submitBugReport hooks, each paired with the next BugReportStatusEvent",
)

data_messages = Table(
    "data_messages",
    metadata,
    Column("operation_id", Text, primary_key=True),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    _ts("sent_at", "OnDataEvent"),
    Column("payload", JSONB),
    _ts("attrs_at"),
    *_status_columns(),
    Column("info", Text),
    comment="OnDataEvent and its DataStatusEvent, by operationId",
)

client_log_pushes = Table(
    "client_log_pushes",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    _ts("pushed_at", nullable=False),
    Column("lines", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("logs", Text),
    Index(None, "session_id"),
    comment="pushLogs hooks",
)

session_debug = Table(
    "session_debug",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("node_id", Text),
    Column("session_id", Text),
    Column("app", Text),
    _ts("at", nullable=False),
    Column("hook", Text, nullable=False, comment="sessionDebug or SessionDebugStatusEvent"),
    Column("value", Text, comment="command (start/stop) or status (STARTED/STOPPED)"),
    Index(None, "session_id"),
    comment="sessionDebug commands and SessionDebugStatusEvents",
)

rejected_records = Table(
    "rejected_records",
    metadata,
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("error", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("value", LargeBinary),
    comment="Kafka records the projector could not decode (its dead-letter table)",
)

PROJECTION_TABLES = (
    hook_log,
    hook_payloads,
    sessions,
    streams,
    calls,
    bug_reports,
    data_messages,
    client_log_pushes,
    session_debug,
    rejected_records,
    projection_positions,
)
