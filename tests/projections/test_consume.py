"""The projector end to end: real Kafka records in, real PostgreSQL rows out.

Expected figures are worked out by hand from the story in ``story.py`` (times are seconds
after T0): e.g. the publisher goes PUBLISHING at 4 and UNPUBLISHED at 120.5, so it lasted
116.5 s; it sent keep-alives at 14, 24, …, 114, i.e. 11 of them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.app import create_app
from projections.consume import BatchResult, ProjectorConfig, apply_batch
from projections.tables import projection_positions
from tests.conftest import service_env
from tests.projections.story import (
    IN_CALL,
    NODE,
    OPERATION,
    ORPHAN,
    OUT_CALL,
    PLAYER,
    PUB,
    SESSION,
    SESSION2,
    SNAPSHOT_LEG,
    Record,
    at,
    by_key,
    caught_up,
    end_offsets,
    produce,
    project,
    sample,
    sample_story,
    shuffled_with_retries,
    stored_positions,
    story_event,
    table_rows,
    wait_for,
)
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def assert_sessions(settings: Settings) -> None:
    sessions = by_key(table_rows(settings, "sessions", "session_id"), "session_id")
    assert set(sessions) == {SESSION, SESSION2}
    s = sessions[SESSION]
    assert (s["node_id"], s["app"], s["client_version"]) == (NODE, "defaultApp", "2.0")
    assert s["media_providers"] == ["WebRTC", "MSE", "WSPlayer"]
    assert s["custom"] == {"userId": "user-77"}  # the token is gone
    assert (s["sip_login"], s["sip_domain"], s["registration_status"]) == (
        "1001",
        "sip.example.com",
        "REGISTERED",
    )
    assert (s["connect_requested_at"], s["connected_at"]) == (at(0), at(1))
    assert (s["status"], s["info"], s["ended_at"]) == ("DISCONNECTED", "Normal disconnect", at(130))
    assert (s["end_status"], s["end_inferred"], s["duration_s"]) == ("DISCONNECTED", False, 129)
    assert (s["debug_on"], s["streams_count"], s["calls_count"]) == (True, 3, 2)
    # the second session went silent at 28; the story ends at 130 > 28 + 60
    o = sessions[SESSION2]
    assert (o["status"], o["end_status"], o["end_inferred"]) == ("ESTABLISHED", "TIMED_OUT", True)
    assert (o["ended_at"], o["duration_s"]) == (at(28), 22)
    assert o["end_info"] == "inferred: no event for 60 s"
    assert (o["streams_count"], o["calls_count"]) == (1, 0)


def assert_streams(settings: Settings) -> None:
    streams = by_key(table_rows(settings, "streams", "media_session_id"), "media_session_id")
    assert set(streams) == {PUB, PLAYER, SNAPSHOT_LEG, ORPHAN}
    pub = streams[PUB]
    assert (pub["name"], pub["role"], pub["media_provider"]) == (
        "lecture-42",
        "publisher",
        "WebRTC",
    )
    assert (pub["audio_codec"], pub["video_codec"], pub["width"], pub["height"]) == (
        "opus",
        "VP8",
        1280,
        720,
    )
    assert pub["record"] is False
    assert pub["created_at"] == at(3.12)  # createDate 1719835203120
    assert (pub["requested_at"], pub["started_at"], pub["stop_requested_at"]) == (
        at(3),
        at(4),
        at(120),
    )
    assert (pub["end_status"], pub["ended_at"], pub["duration_s"]) == (
        "UNPUBLISHED",
        at(120.5),
        Decimal("116.5"),
    )
    assert (pub["keepalive_count"], pub["last_keepalive_at"]) == (11, at(114))
    assert pub["end_inferred"] is False
    player = streams[PLAYER]
    assert (player["role"], player["started_at"], player["keepalive_count"]) == (
        "player",
        at(11),
        9,
    )
    assert (player["end_status"], player["end_info"], player["duration_s"]) == (
        "STOPPED",
        "Stopped by user",
        Decimal("99.5"),
    )
    assert streams[SNAPSHOT_LEG]["snapshots_requested"] == 1
    orphan = streams[ORPHAN]  # keep-alives at 18 and 28, then silence; 130 > 28 + 3 * 10
    assert (orphan["end_status"], orphan["end_inferred"], orphan["ended_at"]) == (
        "TIMED_OUT",
        True,
        at(28),
    )
    assert orphan["end_info"] == "inferred: no keep-alive for 30 s"
    assert (orphan["status"], orphan["duration_s"]) == ("PUBLISHING", 20)


def assert_calls(settings: Settings) -> None:
    calls = by_key(table_rows(settings, "calls", "call_id"), "call_id")
    out = calls[OUT_CALL]
    assert (out["direction"], out["caller"], out["callee"], out["visible_name"]) == (
        "outgoing",
        "1001",
        "1002",
        "Alice",
    )
    assert (out["created_at"], out["ring_at"], out["established_at"], out["hangup_at"]) == (
        at(40),
        at(41),
        at(43),
        at(80),
    )
    assert (out["status"], out["info"], out["sip_status"], out["ended_at"]) == (
        "FINISH",
        "Normal call clearing",
        200,
        at(80.5),
    )
    assert out["talk_duration_s"] == Decimal("37.5")  # 80.5 - 43
    assert (out["hold_count"], out["held_s"]) == (1, 10)  # HOLD at 55.5, ESTABLISHED at 65.5
    assert (out["transfer_target"], out["transfer_status"], out["transfer_info"]) == (
        "1003",
        "FAILED",
        "SIP 404 NOT FOUND",
    )
    assert (out["transfers_requested"], out["dtmf_sent"]) == (1, "57")
    inc = calls[IN_CALL]
    assert (inc["direction"], inc["caller"], inc["status"], inc["sip_status"]) == (
        "incoming",
        "1004",
        "BUSY",
        486,
    )
    assert (inc["ring_at"], inc["established_at"], inc["talk_duration_s"]) == (at(90), None, None)


def assert_diagnostics(settings: Settings) -> None:
    (data,) = table_rows(settings, "data_messages", "operation_id")
    assert (data["operation_id"], data["status"], data["sent_at"], data["status_at"]) == (
        OPERATION,
        "ACCEPTED",
        at(95),
        at(95.2),
    )
    assert data["payload"] == {"type": "chat", "text": "hello from user-77"}
    (bug,) = table_rows(settings, "bug_reports", "event_id")
    assert (bug["type"], bug["submitted_at"], bug["status_at"]) == ("no_media", at(102), at(103))
    assert bug["filename"] == "report-5b0f3c2a-8d41-4e7a-9c55-2f6e1a7b9d03-1719835290000.txt"
    (logs,) = table_rows(settings, "client_log_pushes", "event_id")
    assert (logs["lines"], logs["pushed_at"]) == (2, at(101))
    debug = table_rows(settings, "session_debug", "at")
    assert [(d["hook"], d["value"]) for d in debug] == [
        ("sessionDebug", "start"),
        ("SessionDebugStatusEvent", "STARTED"),
    ]


def assert_story_tables(settings: Settings) -> None:
    assert_sessions(settings)
    assert_streams(settings)
    assert_calls(settings)
    assert_diagnostics(settings)


async def test_sample_story_projects_into_expected_rows(projector_settings: Settings) -> None:
    story = sample_story()
    await produce(projector_settings, [e.envelope() for e in story])
    await project(projector_settings)

    assert_story_tables(projector_settings)
    events = table_rows(projector_settings, "hook_events", "received_at")
    assert len(events) == len(story) == 62
    assert not any(e["suspected_retry"] for e in events)
    (mystery,) = [e for e in events if e["hook"] == "MysteryEvent"]
    assert (mystery["known"], mystery["session_id"]) == (False, SESSION)
    keepalives = [e for e in events if e["hook"] == "StreamKeepAliveEvent"]
    assert len(keepalives) == 11 + 9 + 2


async def test_shuffled_story_sent_twice_gives_the_same_tables(
    projector_settings: Settings,
) -> None:
    story = sample_story()
    await produce(projector_settings, [e.envelope() for e in shuffled_with_retries(story, 7)])
    await project(projector_settings)

    assert_story_tables(projector_settings)
    events = table_rows(projector_settings, "hook_events", "received_at")
    originals = {e.event_id for e in story}
    assert len(events) == 124
    assert {e["event_id"] for e in events if not e["suspected_retry"]} == originals


async def test_crash_between_write_and_commit_loses_and_duplicates_nothing(
    projector_settings: Settings,
) -> None:
    story = sample_story()
    await produce(projector_settings, [e.envelope() for e in story])
    settings = projector_settings.replace(projector_batch_size=7)
    crashes = {"written": 2, "committed": 4}  # crash on the n-th batch at that stage
    fired: list[str] = []

    for stage in ("written", "committed"):
        batches = 0

        async def crash(point: str, _: BatchResult, stage: str = stage) -> None:
            nonlocal batches
            batches += point == "written"
            if point == stage and batches == crashes[stage]:
                fired.append(point)
                raise RuntimeError(f"crash after {point}")

        await project(settings, fault=crash)
    await project(settings)

    assert fired == ["written", "committed"]

    assert_story_tables(settings)
    events = table_rows(settings, "hook_events", "received_at")
    assert sorted(e["event_id"] for e in events) == sorted(e.event_id for e in story)
    assert not any(e["suspected_retry"] for e in events)


def projector_env(settings: Settings) -> dict[str, str]:
    """The environment of a projector process for ``settings``' topic, database and group."""
    return service_env(
        settings,
        database_url=settings.database_url,
        projector_group=settings.projector_group,
        projector_batch_size=str(settings.projector_batch_size),
        projector_batch_timeout_ms=str(settings.projector_batch_timeout_ms),
        projector_session_silence_s=str(settings.projector_session_silence_s),
    )


@pytest.mark.parametrize("point", ["written", "committed"])
async def test_projector_process_killed_mid_batch_loses_and_duplicates_nothing(
    projector_settings: Settings, point: str, tmp_path: Path
) -> None:
    """A real projector process dies by SIGKILL on its 3rd batch, between writing it and
    committing it (or just after committing, before Kafka hears of it); its successor, in the
    same group, resumes from the positions in PostgreSQL."""
    story = sample_story()
    await produce(projector_settings, [e.envelope() for e in story])
    settings = projector_settings.replace(projector_batch_size=7)
    log = tmp_path / "projector.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.projections.killed_projector", point, "3"],
            env=projector_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        returncode = await asyncio.to_thread(process.wait, 120)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode == -signal.SIGKILL, log.read_text()

    # what PostgreSQL kept is exactly the committed batches: every stored hook below its
    # partition's stored position, every record below a stored position stored
    stored = {
        (e["kafka_partition"], e["kafka_offset"])
        for e in table_rows(settings, "hook_events", "kafka_offset")
    }
    positions = stored_positions(settings)
    assert stored == {(p, offset) for p, end in positions.items() for offset in range(end)}
    assert 0 < len(stored) < len(story)

    await project(settings)

    assert_story_tables(settings)
    events = table_rows(settings, "hook_events", "received_at")
    assert sorted(e["event_id"] for e in events) == sorted(e.event_id for e in story)
    assert not any(e["suspected_retry"] for e in events)


async def test_no_secret_reaches_any_projection_column(projector_settings: Settings) -> None:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    await project(projector_settings)

    engine = create_engine(projector_settings.database_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            dump = "\n".join(
                str(row[0])
                for table in list(tables)
                for row in conn.execute(text(f'SELECT t::text FROM "{table}" t'))
            )
    finally:
        engine.dispose()
    assert "s3cret-1001" not in dump
    assert "eyJhbGci" not in dump
    assert "[REDACTED]" in dump  # hook_events keeps the field, not its value


async def test_projector_resumes_at_the_offsets_stored_in_postgres(
    projector_settings: Settings,
) -> None:
    await produce(projector_settings, [e.envelope() for e in sample_story()])
    ends = await end_offsets(projector_settings)
    engine = create_engine(projector_settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                projection_positions.insert(),
                [
                    {
                        "projection": projector_settings.projector_group,
                        "topic": projector_settings.topic,
                        "partition": partition,
                        "next_offset": offset,
                    }
                    for partition, offset in ends.items()
                ],
            )
    finally:
        engine.dispose()
    late = story_event(999, "connect", sample("connect", sessionId=SESSION2), 200.0)
    await produce(projector_settings, [late.envelope()])
    await project(projector_settings)

    events = table_rows(projector_settings, "hook_events", "received_at")
    assert [e["event_id"] for e in events] == [late.event_id]


async def test_two_projectors_in_one_group_share_the_work_without_doubling(
    projector_settings: Settings,
) -> None:
    settings = projector_settings.replace(projector_batch_size=5)
    story = sample_story()
    await produce(settings, [e.envelope() for e in shuffled_with_retries(story, 11)])
    ends = await end_offsets(settings)
    first, second = create_app(settings), create_app(settings)
    await first.start()
    try:
        await second.start()  # joins while the first is consuming: a rebalance
        try:
            await wait_for(lambda: caught_up(settings, ends))
        finally:
            await second.stop()
    finally:
        await first.stop()

    assert first.state.error is None
    assert second.state.error is None
    assert_story_tables(settings)
    events = table_rows(settings, "hook_events", "received_at")
    assert len(events) == 124
    assert {e["event_id"] for e in events if not e["suspected_retry"]} == {
        e.event_id for e in story
    }


async def test_bug_report_status_received_before_its_report_still_pairs(
    projector_settings: Settings,
) -> None:
    # receive jitter can put BugReportStatusEvent first; each lands in a batch of its own
    status = story_event(1, "BugReportStatusEvent", sample("BugReportStatusEvent"), 10.0)
    report = story_event(2, "submitBugReport", sample("submitBugReport"), 10.5)
    await produce(projector_settings, [status.envelope()])
    await project(projector_settings)
    await produce(projector_settings, [report.envelope()])
    await project(projector_settings)

    (bug,) = table_rows(projector_settings, "bug_reports", "event_id")
    assert bug["filename"] == sample("BugReportStatusEvent")["filename"]
    assert (bug["submitted_at"], bug["status_at"]) == (at(10.5), at(10.0))


@pytest.mark.parametrize("ends_known", [True, False])
async def test_a_leg_of_a_partition_behind_is_not_ended_by_a_partition_ahead(
    projector_settings: Settings, engine: AsyncEngine, ends_known: bool
) -> None:
    # partition 0 holds a publisher whose keep-alives come every 10 s; partition 1 another
    # session ten minutes later. The projector reads partition 1 before the rest of 0.
    topic = projector_settings.topic
    settings = projector_settings.replace(projector_keepalive_interval_s=10.0)  # silent: 30 s
    config = ProjectorConfig.from_settings(settings)
    keepalive = sample("StreamKeepAliveEvent")
    hooks = [
        (0, "publishStream", sample("publishStream"), 0.0),
        (0, "StreamStatusEvent", sample("StreamStatusEvent"), 1.0),
        (0, "StreamKeepAliveEvent", keepalive, 10.0),
        (1, "connect", sample("connect", sessionId=SESSION2), 600.0),
        (0, "StreamKeepAliveEvent", keepalive, 20.0),
    ]
    offsets = [0, 0, 0, 0, 0]
    records = []
    for n, (partition, hook, body, seconds) in enumerate(hooks):
        offsets[partition] += 1
        envelope = story_event(n, hook, body, seconds).envelope()
        records.append(
            Record(topic, partition, offsets[partition] - 1, envelope.value, envelope.headers())
        )
    ends = {(topic, 0): 4, (topic, 1): 1}

    async def apply(batch: list[Record]) -> None:
        known = {key: end for key, end in ends.items() if key[1] == batch[0].partition}
        async with engine.begin() as conn:
            await apply_batch(conn, batch, config, ends=known if ends_known else None)

    def leg_end() -> object:
        legs = by_key(table_rows(settings, "streams", "media_session_id"), "media_session_id")
        return legs[PUB]["inferred_end_at"]

    await apply(records[:3])
    await apply(records[3:4])
    # partition 0 is behind (offset 3 of 4): its events reach 10 s, not 600
    assert leg_end() == (None if ends_known else at(10))
    await apply(records[4:])
    # caught up: now is 600 s, and the leg's last keep-alive was at 20 s
    assert leg_end() == at(20)
    sessions = by_key(table_rows(settings, "sessions", "session_id"), "session_id")
    assert sessions[SESSION]["inferred_end_at"] == at(20)
