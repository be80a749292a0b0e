"""The Alembic history upgrades an empty database to one head and downgrades it to nothing."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from migrations.run import alembic_config, downgrade, upgrade
from projections.tables import metadata

pytestmark = pytest.mark.postgres


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) | set(inspect(conn).get_view_names())
    finally:
        engine.dispose()


def test_history_has_one_head(database_url: str) -> None:
    assert len(ScriptDirectory.from_config(alembic_config(database_url)).get_heads()) == 1


def test_upgrade_head_then_downgrade_base(database_url: str) -> None:
    assert table_names(database_url) == set()
    upgrade(database_url)
    assert set(metadata.tables) <= table_names(database_url)
    downgrade(database_url)
    assert table_names(database_url) == {"alembic_version"}


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert "projection_positions" in table_names(database_url)
