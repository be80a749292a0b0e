"""Kafka positions of the projections.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_positions",
        sa.Column(
            "projection", sa.Text(), nullable=False, comment="consumer group that owns the offset"
        ),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column(
            "next_offset",
            sa.BigInteger(),
            nullable=False,
            comment="offset of the next record to apply (Kafka's committed-offset convention)",
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "projection", "topic", "partition", name=op.f("pk_projection_positions")
        ),
        comment="Kafka positions of each projection, written in the same transaction as its rows",
    )


def downgrade() -> None:
    op.drop_table("projection_positions")
