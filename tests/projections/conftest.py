"""Projection fixtures: a migrated database and projector settings for one test."""

from __future__ import annotations

import pytest

from migrations.run import upgrade
from wcs_audit.settings import Settings


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
