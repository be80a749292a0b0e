"""The analytics views on the sample story; every figure is worked out by hand.

Legs (seconds after 12:00:00): publisher lecture-42 4 → 120.5 (UNPUBLISHED), player
lecture-42 11 → 110.5 (STOPPED), publisher orphan 8 → 28 (inferred end after 30 s of silence).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.projections.story import ORPHAN, PLAYER, PUB, at, produce, project, sample_story
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.fixture
async def story_settings(projector_settings: Settings) -> Settings:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    await project(projector_settings)
    return projector_settings


async def test_views_return_the_story_figures(story_settings: Settings) -> None:
    s = story_settings
    assert query(s, "SELECT * FROM concurrent_streams_per_minute ORDER BY minute") == [
        (at(0), 2, 1),
        (at(60), 1, 1),
        (at(120), 1, 0),
    ]
    assert query(s, "SELECT * FROM stream_viewers") == [("lecture-42", 1, 1)]
    # published (116.5 + 20) / 60 = 2.275, played 99.5 / 60 = 1.658…
    assert query(s, "SELECT * FROM usage_minutes_per_app_day") == [
        ("defaultApp", date(2024, 7, 1), Decimal("2.28"), Decimal("1.66"))
    ]
    assert query(s, "SELECT bucket, sessions FROM session_duration_distribution ORDER BY 1") == [
        ("0-1 min", 1),  # the silent session: 6 → 28
        ("1 h+", 0),
        ("1-5 min", 1),  # 1 → 130
        ("15-60 min", 0),
        ("5-15 min", 0),
    ]
    assert query(s, "SELECT bucket, calls FROM call_duration_distribution WHERE calls > 0") == [
        ("0-1 min", 1)  # 43 → 80.5
    ]
    assert query(s, "SELECT * FROM call_outcomes ORDER BY 1") == [("answered", 1), ("busy", 1)]
    assert query(s, "SELECT * FROM stream_end_reasons ORDER BY 1, 2") == [
        ("player", "STOPPED", "Stopped by user", 1),
        ("publisher", "TIMED_OUT", "inferred: no keep-alive for 30 s", 1),
        ("publisher", "UNPUBLISHED", "", 1),
    ]
    assert query(s, "SELECT * FROM bug_reports_per_day") == [("defaultApp", date(2024, 7, 1), 1)]


async def test_stream_detail_records_read_like_wcs_sdr_lines(story_settings: Settings) -> None:
    lines = query(story_settings, "SELECT line FROM stream_detail_records ORDER BY start")
    assert [line for (line,) in lines] == [
        f"2024-07-01 12:00:04;WebRTC;lecture-42;{PUB};00:01:56;UNPUBLISHED;;PUBLISH;1;",
        f"2024-07-01 12:00:08;WebRTC;orphan;{ORPHAN};00:00:20;TIMED_OUT;"
        "inferred: no keep-alive for 30 s;PUBLISH;0;",
        f"2024-07-01 12:00:11;WebRTC;lecture-42;{PLAYER};00:01:39;STOPPED;Stopped by user;"
        "SUBSCRIBE;0;",
    ]
