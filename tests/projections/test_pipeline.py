"""The batch pipeline: its clock (silence ends a leg even when no later event ever arrives),
its pace, and what it leaves to the next owner of a partition after a rebalance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.app import create_app
from projections.consume import BatchResult, ProjectorConfig
from projections.metrics import ProjectorMetrics
from projections.pipeline import BatchPipeline, EventClock
from projections.state import ProjectorState
from tests.projections.story import (
    PUB,
    Record,
    by_key,
    caught_up,
    end_offsets,
    produce,
    sample,
    sample_story,
    stored_positions,
    story_event,
    table_rows,
    wait_for,
)
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_the_clock_starts_at_the_watermark_and_moves_with_time() -> None:
    clock = EventClock()
    assert clock.now() is None
    watermark = datetime(2024, 7, 1, 12, tzinfo=UTC)
    clock.observe(watermark)
    first = clock.now()
    await asyncio.sleep(0.05)
    second = clock.now()
    assert first is not None
    assert second is not None
    assert watermark <= first < second
    clock.observe(None)  # nothing stored yet: the anchor stays
    assert clock.anchor is not None
    assert clock.anchor[0] == watermark


def leg_is_open(settings: Settings) -> bool:
    leg = by_key(table_rows(settings, "streams", "media_session_id"), "media_session_id")[PUB]
    return bool(leg["inferred_end_at"] is None)


async def test_a_leg_whose_keepalives_stop_ends_without_any_later_event(
    projector_settings: Settings,
) -> None:
    publishing = sample("StreamStatusEvent", status="PUBLISHING")
    hooks = [
        ("publishStream", sample("publishStream"), 0.0),
        ("StreamStatusEvent", publishing, 0.5),
        ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent"), 1.0),
        ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent"), 2.0),
    ]
    await produce(
        projector_settings, [story_event(n, *hook).envelope() for n, hook in enumerate(hooks)]
    )
    settings = projector_settings.replace(
        projector_keepalive_interval_s=1.0,  # silent after 3 s of event time
        projector_sweep_interval_s=0.2,
    )
    ends = await end_offsets(settings)
    projector = create_app(settings)
    await projector.start()
    try:
        await wait_for(lambda: caught_up(settings, ends))
        # the last batch's own sweep saw the last keep-alive as "now": the leg is still open
        assert leg_is_open(settings)
        await wait_for(lambda: not leg_is_open(settings), within=20)
    finally:
        await projector.stop()
    assert projector.state.error is None
    leg = by_key(table_rows(settings, "streams", "media_session_id"), "media_session_id")[PUB]
    assert leg["inferred_reason"] == "inferred: no keep-alive for 3 s"
    assert leg["inferred_end_at"] == leg["last_seen_at"]


async def test_records_arriving_one_by_one_gather_into_batches_at_most_one_per_interval(
    projector_settings: Settings,
) -> None:
    interval_s = 0.5
    settings = projector_settings.replace(
        projector_batch_interval_ms=round(interval_s * 1000),
        projector_retry_window_s=0.5,  # the keep-alives below are 1 s apart: none is a retry
    )
    keepalive = sample("StreamKeepAliveEvent")
    written: list[float] = []

    async def observe(point: str, _: BatchResult) -> None:
        if point == "written":
            written.append(asyncio.get_running_loop().time())

    projector = create_app(settings, fault=observe)
    await projector.start()
    try:
        for index in range(12):  # one record per produce, each its own connection: ~1 s
            await produce(
                settings, [story_event(index, "StreamKeepAliveEvent", keepalive, index).envelope()]
            )
        ends = await end_offsets(settings)
        await wait_for(lambda: caught_up(settings, ends))
    finally:
        await projector.stop()
    assert projector.state.error is None
    legs = by_key(table_rows(settings, "streams", "media_session_id"), "media_session_id")
    assert legs[PUB]["keepalive_count"] == 12
    # handle() returns no sooner than interval_s after it was called, so k batches span at
    # least (k - 1) intervals, less the first batch's own decoding
    span = written[-1] - written[0]
    assert len(written) <= (span + 0.25) / interval_s + 1


async def test_a_batch_fetched_before_a_rebalance_leaves_the_partitions_it_lost_alone(
    projector_settings: Settings, engine: AsyncEngine
) -> None:
    # the story alternates between partitions 0 and 1; a rebalance has just taken partition 1
    story = sample_story()[:10]
    records = [
        Record(projector_settings.topic, n % 2, n // 2, e.envelope().value, e.envelope().headers())
        for n, e in enumerate(story)
    ]
    state = ProjectorState(owned={(projector_settings.topic, 0)})
    config = ProjectorConfig.from_settings(projector_settings)
    pipeline = BatchPipeline(engine, config, ProjectorMetrics.create(), state)

    await pipeline.handle(SimpleNamespace(raw_message=records))  # type: ignore[arg-type]
    await pipeline.drain()

    assert state.error is None
    stored = {row["event_id"] for row in table_rows(projector_settings, "hook_events", "event_id")}
    assert stored == {e.event_id for e in story[0::2]}  # partition 0's records only
    # partition 1's next owner starts where it is stored: nowhere yet
    assert stored_positions(projector_settings) == {0: 5}
