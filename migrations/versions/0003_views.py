"""Analytics views (docs/analytics.md): concurrency, viewers, usage, durations, outcomes, SDR.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from projections.views import VIEWS_V1

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for view in VIEWS_V1:
        op.execute(view.create)


def downgrade() -> None:
    for view in reversed(VIEWS_V1):
        op.execute(view.drop)
