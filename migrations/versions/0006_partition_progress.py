"""How far each partition is: its end offset and the newest receive time applied from it.

The silence sweep measures silence against event time. While the projectors catch up, the
partitions advance at different speeds in event time, and the newest event of all of them
is too late a "now" for a partition that is behind: its legs were ended as silent and
reopened by their next event. With these two columns, the sweep takes as "now" no later
than the newest event applied from any partition that still has records to apply.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "projection_positions",
        sa.Column(
            "end_offset",
            sa.BigInteger(),
            nullable=True,
            comment="the partition's end offset as the consumer last knew it; "
            "next_offset < end_offset: the projection is behind",
        ),
    )
    op.add_column(
        "projection_positions",
        sa.Column(
            "received_through",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the newest receive time among the hooks applied from the partition",
        ),
    )


def downgrade() -> None:
    op.drop_column("projection_positions", "received_through")
    op.drop_column("projection_positions", "end_offset")
