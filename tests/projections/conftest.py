"""Projection fixtures: a migrated database, projector settings and an engine for one test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from migrations.run import upgrade
from tests.loops import on_uvloop
from wcs_audit.settings import Settings

pytest_asyncio_loop_factories = on_uvloop  # the receiver's and projector's loop


@pytest.fixture
def projector_settings(settings: Settings) -> Settings:
    """The test's topic and a migrated database; sessions go silent after 60 s."""
    upgrade(settings.database_url)
    return settings.replace(
        projector_group="test-projector",
        projector_session_silence_s=60.0,
        projector_batch_size=50,
        projector_batch_timeout_ms=50,
    )


@pytest.fixture
async def engine(projector_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(projector_settings.database_url)
    yield engine
    await engine.dispose()
