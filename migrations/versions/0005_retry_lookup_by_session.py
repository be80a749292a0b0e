"""The retry lookup goes through the session's hooks: no global index of body hashes.

A retried hook has the same body as its original, so the same ``sessionId``. The lookup now
finds a batch's earlier copies by session and receive time, ``(session_id, received_at)``,
an index operators want anyway for a session's timeline; only hooks without a session keep a
``(body_hash, received_at)`` index, partial, so other rows add no entry to it. The full index
of 64-hex-digit hashes, inserted at random places, held two thirds of ``hook_events``' index
bytes (27 of 39 MB for 207,000 rows) and cost a COPY into the table ~10% of its time.

On a large ``hook_events`` this migration builds an index over the whole table: plan for it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SESSIONLESS = sa.text("session_id IS NULL")


def upgrade() -> None:
    op.create_index(
        op.f("ix_hook_events_session_id_received_at"),
        "hook_events",
        ["session_id", "received_at"],
        unique=False,
    )
    op.drop_index(op.f("ix_hook_events_session_id"), table_name="hook_events")
    op.drop_index(op.f("ix_hook_events_body_hash_received_at"), table_name="hook_events")
    op.create_index(
        op.f("ix_hook_events_body_hash_received_at"),
        "hook_events",
        ["body_hash", "received_at"],
        unique=False,
        postgresql_where=SESSIONLESS,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_hook_events_body_hash_received_at"),
        table_name="hook_events",
        postgresql_where=SESSIONLESS,
    )
    op.create_index(
        op.f("ix_hook_events_body_hash_received_at"),
        "hook_events",
        ["body_hash", "received_at"],
        unique=False,
    )
    op.create_index(op.f("ix_hook_events_session_id"), "hook_events", ["session_id"], unique=False)
    op.drop_index(op.f("ix_hook_events_session_id_received_at"), table_name="hook_events")
