"""``audit_log_prunes``: a row for each prune of the audit log (``wcs-audit projections prune``).

An audit trail that loses its old hooks says so: when, before which receive time, and how
many hooks and bodies went. A new, empty table: cheap on any database.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log_prunes",
        sa.Column("prune_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "pruned_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "received_before",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="hooks received before this time were deleted",
        ),
        sa.Column("hooks", sa.BigInteger(), nullable=False, comment="rows deleted from hook_log"),
        sa.Column(
            "payloads",
            sa.BigInteger(),
            nullable=False,
            comment="bodies deleted from hook_payloads (no hook pointed at them any more)",
        ),
        sa.PrimaryKeyConstraint("prune_id", name=op.f("pk_audit_log_prunes")),
        comment=(
            "Each prune of the audit log (wcs-audit projections prune). The read models and "
            "Kafka's copy were kept; a rebuild restores the hooks Kafka still holds"
        ),
    )


def downgrade() -> None:
    op.drop_table("audit_log_prunes")
