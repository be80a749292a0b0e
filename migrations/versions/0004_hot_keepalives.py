"""Keep-alives update streams and sessions in place (HOT): no index on last_seen_at.

A keep-alive moves ``last_seen_at`` of its leg and session. While that column was indexed (for
the silence sweep), every keep-alive wrote a new entry into each index of both tables. The
sweep's index now covers only the open rows' ``status_rank``, which a keep-alive leaves alone,
so PostgreSQL can update the row on its own page (a HOT update) and touch no index; the sweep
reads the open rows (the concurrent legs and sessions, not the history) and filters by time.
``fillfactor`` leaves room on each page for those updates.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL"
TABLES = ("sessions", "streams")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(
            op.f(f"ix_{table}_last_seen_at"), table_name=table, postgresql_where=sa.text(OPEN)
        )
        op.create_index(
            op.f(f"ix_{table}_status_rank"),
            table,
            ["status_rank"],
            unique=False,
            postgresql_where=sa.text(OPEN),
        )
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
        op.drop_index(
            op.f(f"ix_{table}_status_rank"), table_name=table, postgresql_where=sa.text(OPEN)
        )
        op.create_index(
            op.f(f"ix_{table}_last_seen_at"),
            table,
            ["last_seen_at"],
            unique=False,
            postgresql_where=sa.text(OPEN),
        )
