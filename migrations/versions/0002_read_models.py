"""Read models: hook_events (audit log), sessions, streams, calls, diagnostics, rejects.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bug_reports",
        sa.Column(
            "event_id", sa.Uuid(), nullable=False, comment="event id of the submitBugReport hook"
        ),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column(
            "report",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the reported object, secrets removed",
        ),
        sa.Column(
            "filename",
            sa.Text(),
            nullable=True,
            comment="from the BugReportStatusEvent that followed",
        ),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_bug_reports")),
        comment="submitBugReport hooks, each paired with the next BugReportStatusEvent",
    )
    op.create_index(op.f("ix_bug_reports_session_id"), "bug_reports", ["session_id"], unique=False)
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("direction", sa.Text(), nullable=True, comment="incoming or outgoing"),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("callee", sa.Text(), nullable=True),
        sa.Column("visible_name", sa.Text(), nullable=True),
        sa.Column("media_provider", sa.Text(), nullable=True),
        sa.Column("transfer_target", sa.Text(), nullable=True),
        sa.Column("attrs_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=True, comment="call / OnCallEvent"
        ),
        sa.Column("ring_at", sa.DateTime(timezone=True), nullable=True, comment="first RING"),
        sa.Column(
            "established_at", sa.DateTime(timezone=True), nullable=True, comment="first ESTABLISHED"
        ),
        sa.Column(
            "hangup_at", sa.DateTime(timezone=True), nullable=True, comment="first hangup hook"
        ),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column(
            "status_rank",
            sa.SmallInteger(),
            nullable=True,
            comment="0 request, 1 active, 2 terminal",
        ),
        sa.Column(
            "status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the event that set the status",
        ),
        sa.Column("status_event", sa.Uuid(), nullable=True, comment="event that set the status"),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("sip_status", sa.Integer(), nullable=True),
        sa.Column(
            "ended_at",
            sa.DateTime(timezone=True),
            sa.Computed("CASE WHEN status_rank = 2 THEN status_at END", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "talk_duration_s",
            sa.Numeric(),
            sa.Computed(
                "EXTRACT(EPOCH FROM (CASE WHEN status_rank = 2 THEN status_at END) - established_at)",  # noqa: E501
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column("hold_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("held_s", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("transfers_requested", sa.Integer(), server_default="0", nullable=False),
        sa.Column("transfer_status", sa.Text(), nullable=True),
        sa.Column(
            "transfer_status_rank",
            sa.SmallInteger(),
            nullable=True,
            comment="0 request, 1 active, 2 terminal",
        ),
        sa.Column(
            "transfer_status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the event that set the status",
        ),
        sa.Column(
            "transfer_status_event", sa.Uuid(), nullable=True, comment="event that set the status"
        ),
        sa.Column("transfer_info", sa.Text(), nullable=True),
        sa.Column(
            "dtmf_sent", sa.Text(), nullable=True, comment="digits of sendDtmf hooks in time order"
        ),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_calls")),
        comment="One row per SIP call (callId)",
    )
    op.create_index(op.f("ix_calls_session_id"), "calls", ["session_id"], unique=False)
    op.create_table(
        "client_log_pushes",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_client_log_pushes")),
        comment="pushLogs hooks",
    )
    op.create_index(
        op.f("ix_client_log_pushes_session_id"), "client_log_pushes", ["session_id"], unique=False
    )
    op.create_table(
        "data_messages",
        sa.Column("operation_id", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True, comment="OnDataEvent"),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("attrs_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column(
            "status_rank",
            sa.SmallInteger(),
            nullable=True,
            comment="0 request, 1 active, 2 terminal",
        ),
        sa.Column(
            "status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the event that set the status",
        ),
        sa.Column("status_event", sa.Uuid(), nullable=True, comment="event that set the status"),
        sa.Column("info", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_data_messages")),
        comment="OnDataEvent and its DataStatusEvent, by operationId",
    )
    op.create_table(
        "hook_events",
        sa.Column("event_id", sa.Uuid(), nullable=False, comment="UUIDv7 minted by the receiver"),
        sa.Column("hook", sa.Text(), nullable=False),
        sa.Column("known", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True, comment="appKey"),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("media_session_id", sa.Text(), nullable=True),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("operation_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the hook body, secret values redacted",
        ),
        sa.Column("body_hash", sa.Text(), nullable=False),
        sa.Column(
            "suspected_retry",
            sa.Boolean(),
            nullable=False,
            comment="same hook and body hash seen within the retry window: kept, not projected",
        ),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_hook_events")),
        comment="Audit log: one row per hook, in the order Kafka delivered them",
    )
    op.create_index(
        op.f("ix_hook_events_body_hash_received_at"),
        "hook_events",
        ["body_hash", "received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_hook_events_call_id"),
        "hook_events",
        ["call_id"],
        unique=False,
        postgresql_where=sa.text("call_id IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_hook_events_received_at"), "hook_events", ["received_at"], unique=False
    )
    op.create_index(op.f("ix_hook_events_session_id"), "hook_events", ["session_id"], unique=False)
    op.create_table(
        "rejected_records",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("topic", "partition", "offset", name=op.f("pk_rejected_records")),
        comment="Kafka records the projector could not decode (its dead-letter table)",
    )
    op.create_table(
        "session_debug",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "hook", sa.Text(), nullable=False, comment="sessionDebug or SessionDebugStatusEvent"
        ),
        sa.Column(
            "value",
            sa.Text(),
            nullable=True,
            comment="command (start/stop) or status (STARTED/STOPPED)",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_session_debug")),
        comment="sessionDebug commands and SessionDebugStatusEvents",
    )
    op.create_index(
        op.f("ix_session_debug_session_id"), "session_debug", ["session_id"], unique=False
    )
    op.create_table(
        "sessions",
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("client_version", sa.Text(), nullable=True),
        sa.Column("client_os_version", sa.Text(), nullable=True),
        sa.Column("client_browser_version", sa.Text(), nullable=True),
        sa.Column("media_providers", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "custom",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="connect custom data, secret fields removed",
        ),
        sa.Column("sip_login", sa.Text(), nullable=True),
        sa.Column("sip_domain", sa.Text(), nullable=True),
        sa.Column(
            "attrs_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the latest event that carried attributes",
        ),
        sa.Column("registration_status", sa.Text(), nullable=True),
        sa.Column("registration_status_rank", sa.SmallInteger(), nullable=True),
        sa.Column("registration_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registration_status_event", sa.Uuid(), nullable=True),
        sa.Column(
            "connect_requested_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="first connect hook",
        ),
        sa.Column(
            "connected_at", sa.DateTime(timezone=True), nullable=True, comment="first ESTABLISHED"
        ),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column(
            "status_rank",
            sa.SmallInteger(),
            nullable=True,
            comment="0 request, 1 active, 2 terminal",
        ),
        sa.Column(
            "status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the event that set the status",
        ),
        sa.Column("status_event", sa.Uuid(), nullable=True, comment="event that set the status"),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column(
            "inferred_end_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="set when silence closed the row; cleared by a later event",
        ),
        sa.Column("inferred_reason", sa.Text(), nullable=True),
        sa.Column(
            "ended_at",
            sa.DateTime(timezone=True),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN status_at ELSE inferred_end_at END", persisted=True
            ),
            nullable=True,
            comment="terminal status time, else inferred end",
        ),
        sa.Column(
            "end_status",
            sa.Text(),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN status WHEN inferred_end_at IS NOT NULL THEN 'TIMED_OUT' END",  # noqa: E501
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "end_info",
            sa.Text(),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN info ELSE inferred_reason END", persisted=True
            ),
            nullable=True,
        ),
        sa.Column(
            "end_inferred",
            sa.Boolean(),
            sa.Computed(
                "status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NOT NULL", persisted=True
            ),
            nullable=True,
        ),
        sa.Column(
            "duration_s",
            sa.Numeric(),
            sa.Computed(
                "EXTRACT(EPOCH FROM (CASE WHEN status_rank = 2 THEN status_at ELSE inferred_end_at END) - connected_at)",  # noqa: E501
                persisted=True,
            ),
            nullable=True,
            comment="ended_at - connected_at, seconds",
        ),
        sa.Column("debug_status", sa.Text(), nullable=True),
        sa.Column("debug_status_rank", sa.SmallInteger(), nullable=True),
        sa.Column("debug_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("debug_status_event", sa.Uuid(), nullable=True),
        sa.Column(
            "debug_on",
            sa.Boolean(),
            sa.Computed("debug_status IN ('start', 'STARTED')", persisted=True),
            nullable=True,
        ),
        sa.Column("streams_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("calls_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("node_id", "session_id", name=op.f("pk_sessions")),
        comment="One row per WCS session (node, sessionId)",
    )
    op.create_index(
        op.f("ix_sessions_last_seen_at"),
        "sessions",
        ["last_seen_at"],
        unique=False,
        postgresql_where=sa.text("status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"),
    )
    op.create_table(
        "streams",
        sa.Column("media_session_id", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True, comment="publisher or player"),
        sa.Column("media_provider", sa.Text(), nullable=True),
        sa.Column("audio_codec", sa.Text(), nullable=True),
        sa.Column("video_codec", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("record", sa.Boolean(), nullable=True),
        sa.Column("attrs_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=True, comment="createDate of the leg"
        ),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="publishStream / playStream",
        ),
        sa.Column(
            "stop_requested_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="unPublishStream / stopStream",
        ),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="first PUBLISHING / PLAYING",
        ),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column(
            "status_rank",
            sa.SmallInteger(),
            nullable=True,
            comment="0 request, 1 active, 2 terminal",
        ),
        sa.Column(
            "status_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the event that set the status",
        ),
        sa.Column("status_event", sa.Uuid(), nullable=True, comment="event that set the status"),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column(
            "inferred_end_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="set when silence closed the row; cleared by a later event",
        ),
        sa.Column("inferred_reason", sa.Text(), nullable=True),
        sa.Column(
            "ended_at",
            sa.DateTime(timezone=True),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN status_at ELSE inferred_end_at END", persisted=True
            ),
            nullable=True,
            comment="terminal status time, else inferred end",
        ),
        sa.Column(
            "end_status",
            sa.Text(),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN status WHEN inferred_end_at IS NOT NULL THEN 'TIMED_OUT' END",  # noqa: E501
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "end_info",
            sa.Text(),
            sa.Computed(
                "CASE WHEN status_rank = 2 THEN info ELSE inferred_reason END", persisted=True
            ),
            nullable=True,
        ),
        sa.Column(
            "end_inferred",
            sa.Boolean(),
            sa.Computed(
                "status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NOT NULL", persisted=True
            ),
            nullable=True,
        ),
        sa.Column(
            "duration_s",
            sa.Numeric(),
            sa.Computed(
                "EXTRACT(EPOCH FROM (CASE WHEN status_rank = 2 THEN status_at ELSE inferred_end_at END) - started_at)",  # noqa: E501
                persisted=True,
            ),
            nullable=True,
            comment="ended_at - started_at, seconds",
        ),
        sa.Column("keepalive_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_keepalive_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snapshots_requested", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("media_session_id", name=op.f("pk_streams")),
        comment="One row per publish or play leg (mediaSessionId)",
    )
    op.create_index(
        op.f("ix_streams_last_seen_at"),
        "streams",
        ["last_seen_at"],
        unique=False,
        postgresql_where=sa.text("status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"),
    )
    op.create_index(op.f("ix_streams_name"), "streams", ["name"], unique=False)
    op.create_index(op.f("ix_streams_session_id"), "streams", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_streams_session_id"), table_name="streams")
    op.drop_index(op.f("ix_streams_name"), table_name="streams")
    op.drop_index(
        op.f("ix_streams_last_seen_at"),
        table_name="streams",
        postgresql_where=sa.text("status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"),
    )
    op.drop_table("streams")
    op.drop_index(
        op.f("ix_sessions_last_seen_at"),
        table_name="sessions",
        postgresql_where=sa.text("status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"),
    )
    op.drop_table("sessions")
    op.drop_index(op.f("ix_session_debug_session_id"), table_name="session_debug")
    op.drop_table("session_debug")
    op.drop_table("rejected_records")
    op.drop_index(op.f("ix_hook_events_session_id"), table_name="hook_events")
    op.drop_index(op.f("ix_hook_events_received_at"), table_name="hook_events")
    op.drop_index(
        op.f("ix_hook_events_call_id"),
        table_name="hook_events",
        postgresql_where=sa.text("call_id IS NOT NULL"),
    )
    op.drop_index(op.f("ix_hook_events_body_hash_received_at"), table_name="hook_events")
    op.drop_table("hook_events")
    op.drop_table("data_messages")
    op.drop_index(op.f("ix_client_log_pushes_session_id"), table_name="client_log_pushes")
    op.drop_table("client_log_pushes")
    op.drop_index(op.f("ix_calls_session_id"), table_name="calls")
    op.drop_table("calls")
    op.drop_index(op.f("ix_bug_reports_session_id"), table_name="bug_reports")
    op.drop_table("bug_reports")
