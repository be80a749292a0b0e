"""The migrations build exactly the tables of ``projections.tables``, and the views."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations.run import upgrade
from projections.tables import metadata
from projections.views import HOOK_EVENTS, VIEWS_V1

pytestmark = pytest.mark.postgres


def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
            views = set(inspect(conn).get_view_names())
    finally:
        engine.dispose()
    assert differences == []
    assert views == {view.name for view in (*VIEWS_V1, HOOK_EVENTS)}
