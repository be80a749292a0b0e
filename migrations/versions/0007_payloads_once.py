"""Each distinct hook body stored once: table ``hook_events`` becomes ``hook_log`` +
``hook_payloads``, and ``hook_events`` a view with the same columns (``payload_id`` added).

A leg's keep-alives, most of the traffic, repeat one body every interval; PostgreSQL parsed
and stored it again for every hook. ``hook_log`` keeps one row per hook, as before, with the
key of its body in ``hook_payloads``; queries written against ``hook_events`` read the view.

Stored bodies are keyed by the first 16 bytes of the SHA-256 of their ``jsonb`` text (the
projector keys new ones by a BLAKE2b of the text it received: a body seen before and after
the upgrade may be stored twice, which costs only its space).

On a large ``hook_events`` this migration rewrites every row, in one transaction: plan for
the time and twice the table's disk. The bodies' space is free for new rows after
``VACUUM``; it goes back to the file system after ``VACUUM FULL hook_log``. Downgrading
copies every body back into its rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from projections.views import HOOK_EVENTS

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXED = ("session_id_received_at", "body_hash_received_at", "received_at", "call_id")
LOG_COMMENT = (
    "Audit log: one row per hook, in the order Kafka delivered them; its body is in "
    "hook_payloads (read both through the view hook_events)"
)
EVENTS_COMMENT = "Audit log: one row per hook, in the order Kafka delivered them"


def rename_table(old: str, new: str) -> None:
    """Renames table ``old`` and its primary key and indexes to the names ``new`` gives."""
    op.rename_table(old, new)
    op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT pk_{old} TO pk_{new}")
    for columns in INDEXED:
        op.execute(f"ALTER INDEX ix_{old}_{columns} RENAME TO ix_{new}_{columns}")


def upgrade() -> None:
    op.create_table(
        "hook_payloads",
        sa.Column(
            "payload_id", sa.LargeBinary(), nullable=False, comment="a 16-byte digest of the text"
        ),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="a hook body, secret values redacted",
        ),
        sa.PrimaryKeyConstraint("payload_id", name=op.f("pk_hook_payloads")),
        comment=(
            "Each distinct hook body once (a leg's keep-alives repeat one body every "
            "interval); rows of hook_log point here by payload_id"
        ),
    )
    rename_table("hook_events", "hook_log")
    op.add_column(
        "hook_log",
        sa.Column(
            "payload_id",
            sa.LargeBinary(),
            nullable=True,
            comment="the hook body's key in hook_payloads (a digest of its text)",
        ),
    )
    op.execute(
        "UPDATE hook_log SET payload_id = substring(sha256(convert_to(payload::text, 'UTF8')) "
        "FROM 1 FOR 16)"
    )
    op.execute(
        "INSERT INTO hook_payloads (payload_id, payload) "
        "SELECT DISTINCT ON (payload_id) payload_id, payload FROM hook_log ORDER BY payload_id"
    )
    op.alter_column("hook_log", "payload_id", nullable=False)
    op.drop_column("hook_log", "payload")
    op.create_table_comment("hook_log", LOG_COMMENT)
    op.execute(HOOK_EVENTS.create)


def downgrade() -> None:
    op.execute(HOOK_EVENTS.drop)
    op.add_column(
        "hook_log",
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="the hook body, secret values redacted",
        ),
    )
    # a hook whose body was deleted by hand gets JSON null: the column takes no SQL NULL
    op.execute(
        "UPDATE hook_log l SET payload = coalesce("
        "(SELECT p.payload FROM hook_payloads p WHERE p.payload_id = l.payload_id), 'null')"
    )
    op.alter_column("hook_log", "payload", nullable=False)
    op.drop_column("hook_log", "payload_id")
    op.create_table_comment("hook_log", EVENTS_COMMENT)
    rename_table("hook_log", "hook_events")
    op.drop_table("hook_payloads")
