"""A small simulated day, every quirk on, end to end: simulate (CLI, its own process) ->
receiver (real socket) -> Kafka -> projector (its own process) -> PostgreSQL -> check.

The day is simulated once per module; the tests that plant a wrong figure do it inside a
transaction they roll back, so each sees the day as projected."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import create_engine, text

from migrations.run import upgrade
from simulator.check import compare, read_projections, read_rows
from simulator.figures import Moment, concurrency_per_minute, minute_of
from simulator.judge import Clock
from simulator.run import projector_env
from simulator.scenario import Quirks, Scenario
from simulator.truth import LegTruth, Truth, observed_end, read_truth
from tests.conftest import rejected_topic_of, unique_name
from tests.ingest.conftest import running_receiver
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import create_database, drop_database

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# Arrival jitter is multiplied by the speed: at 5x, 0.4 s of uneven receiver delay is 2 s of
# simulated time, still inside the retry window's margins (see simulator.scenario).
QUIRKS = Quirks(duplicates=0.03, reorder=0.05, lost_terminals=0.15, skew_s=90.0, burst=50)
SCENARIO = Scenario(seed=11, nodes=3, sessions=20, duration_s=300.0, speed=5.0, quirks=QUIRKS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that uses this test's topic and database."""
    return os.environ | {
        "WCS_AUDIT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "WCS_AUDIT_TOPIC": settings.topic,
        "WCS_AUDIT_REJECTED_TOPIC": settings.rejected_topic,
        "WCS_AUDIT_DATABASE_URL": settings.database_url,
        "WCS_AUDIT_LOG_LEVEL": "WARNING",
    }


@contextmanager
def running_projector(settings: Settings, scenario: Scenario) -> Iterator[None]:
    """``wcs-audit projector`` as a child process, its timing scaled to the scenario's speed."""
    env = stack_env(settings) | projector_env(scenario)
    env |= {
        "WCS_AUDIT_PROJECTOR_GROUP": "sim-test",
        "WCS_AUDIT_PROJECTOR_METRICS_PORT": str(free_port()),
        "WCS_AUDIT_PROJECTOR_BATCH_SIZE": "500",
        "WCS_AUDIT_PROJECTOR_BATCH_TIMEOUT_MS": "50",
    }
    process = subprocess.Popen([sys.executable, "-m", "wcs_audit.cli", "projector"], env=env)
    try:
        yield
        assert process.poll() is None, f"projector exited with {process.returncode}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_events(database_url: str, count: int, timeout_s: float = 120) -> int:
    """Waits until ``hook_events`` holds ``count`` rows (the projector caught up)."""
    engine = create_engine(database_url)
    deadline, stored = time.monotonic() + timeout_s, -1
    query = text("SELECT count(*) FROM hook_events")
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                stored = int(conn.execute(query).scalar_one())
            if stored >= count:
                time.sleep(1)  # let the batch that follows close silent legs, if any
                return stored
            time.sleep(0.5)
        return stored
    finally:
        engine.dispose()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wcs_audit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def simulate_args(scenario: Scenario, truth: Path, url: str) -> list[str]:
    quirks = scenario.quirks
    return [
        "simulate", "--url", url, "--truth", str(truth), "--seed", str(scenario.seed),
        "--nodes", str(scenario.nodes), "--sessions", str(scenario.sessions),
        "--minutes", str(scenario.duration_s / 60), "--speed", str(scenario.speed),
        "--duplicates", str(quirks.duplicates), "--reorder", str(quirks.reorder),
        "--lose-terminals", str(quirks.lost_terminals), "--skew", str(quirks.skew_s),
        "--burst", str(quirks.burst), "--connections", "32",
    ]  # fmt: skip


@pytest.fixture(scope="module")
async def day_settings(stack: Settings) -> AsyncIterator[Settings]:
    """A topic and a database of this module's own on the real stack, removed after it."""
    topic = unique_name("test.hooks")
    database_url = stack.database_url.rsplit("/", 1)[0] + "/" + unique_name("test")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        create_database(database_url)
        yield stack.replace(
            topic=topic, rejected_topic=rejected_topic_of(topic), database_url_env=database_url
        )
        drop_database(database_url)
        await admin.delete_topics([topic, rejected_topic_of(topic)])
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class SimulatedDay:
    """The projected day: its settings (topic, database), truth and truth file, and what the
    simulator printed (its load report: latencies, how far the sender lagged)."""

    settings: Settings
    truth: Truth
    truth_path: Path
    report: str


@pytest.fixture(scope="module")
async def day(day_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> SimulatedDay:
    """SCENARIO simulated through the CLI into a receiver and projector; returns once the
    projector stored every hook."""
    settings, tmp_path = day_settings, tmp_path_factory.mktemp("day")
    upgrade(settings.database_url)
    truth_path = tmp_path / "truth.jsonl"
    receiver_settings = settings.replace(spool_dir=tmp_path / "spool", produce_timeout_ms=1000)
    with running_projector(settings, SCENARIO):
        async with running_receiver(receiver_settings) as url:
            args = simulate_args(SCENARIO, truth_path, url + "/apps/wcs")
            simulated = await asyncio.to_thread(cli, *args, env=stack_env(settings))
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        truth = read_truth(truth_path)
        stored = await asyncio.to_thread(wait_for_events, settings.database_url, truth.run.hooks)
        assert stored == truth.run.hooks
    return SimulatedDay(settings, truth, truth_path, simulated.stdout)


def mismatch_report(day: SimulatedDay, mismatches: list[str], shown: int = 30) -> str:
    """What a reader of a failed run needs: how many mismatches, the first ones, the margins
    the check allowed and the simulator's load report."""
    run = day.truth.run
    return "\n".join(
        [
            f"{len(mismatches)} mismatches; the first {min(shown, len(mismatches))}:",
            *mismatches[:shown],
            f"margins: late {run.tolerance_s:.3f} s simulated (slack {run.slack_s:.3f} s + "
            f"max delay {run.max_delay_s:.3f} s wall x speed {run.speed})",
            day.report,
        ]
    )


async def test_simulated_day_matches_the_projections(day: SimulatedDay) -> None:
    run, truth = day.truth.run, day.truth
    assert run.duplicates > 0, "every quirk must be exercised"
    assert run.lost_terminals > 0
    assert sum(1 for leg in truth.legs if leg.name == "keynote") > QUIRKS.burst
    assert sum(leg.keepalives for leg in truth.legs) > 0

    mismatches = await asyncio.to_thread(
        compare, truth, read_projections(day.settings.database_url)
    )
    assert not mismatches, mismatch_report(day, [str(m) for m in mismatches])
    checked = await asyncio.to_thread(
        cli, "check", "--truth", str(day.truth_path), env=stack_env(day.settings)
    )
    assert checked.returncode == 0, checked.stdout


@dataclass(frozen=True, slots=True)
class Plant:
    """A wrong figure: ``sql`` (with ``params``) changes rows under a view or table, and
    check must then print a line that starts with each of ``expected``."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    expected: tuple[str, ...] = ()


def finished(truth: Truth, role: str) -> LegTruth:
    """A leg of ``role`` that went live and whose terminal status arrived."""
    return next(
        leg for leg in truth.legs
        if leg.role == role and leg.started is not None and not leg.lost_terminal
        and leg.keepalives
    )  # fmt: skip


def exactly_counted_publisher(truth: Truth) -> LegTruth:
    """A publisher that counts in a minute whose publisher count has no leeway, so that
    counting it as a player must show."""
    clock = Clock(truth.run)
    minutes = concurrency_per_minute(truth.legs, clock)
    for leg in truth.legs:
        if leg.role != "publisher" or leg.started is None:
            continue
        start, end = Moment.of(clock, leg.started), Moment.of(clock, observed_end(leg))
        for minute in range(minute_of(start.latest), minute_of(end.earliest) + 1):
            bounds = minutes.at(minute)["publisher"]
            if bounds.low == bounds.high:
                return leg
    raise AssertionError("no minute counts its publishers exactly")


def plant_keepalive(truth: Truth) -> Plant:
    leg = finished(truth, "player")
    return Plant(
        "UPDATE streams SET keepalive_count = keepalive_count + 1 WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        (f"streams {leg.media_session_id} keepalive_count",),
    )


def plant_concurrency(truth: Truth) -> Plant:
    leg = exactly_counted_publisher(truth)
    return Plant(
        "UPDATE streams SET role = 'player' WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        ("concurrent_streams_per_minute",),
    )


def plant_session_duration(truth: Truth) -> Plant:
    session = next(s for s in truth.sessions if s.connected is not None)
    return Plant(
        "UPDATE sessions SET connected_at = connected_at - interval '1 hour'"
        " WHERE session_id = :id",
        {"id": session.session_id},
        ("session_duration_distribution 1 h+ sessions",),
    )


def plant_talk_time(truth: Truth) -> Plant:
    call = next(c for c in truth.calls if c.established is not None)
    return Plant(
        "UPDATE calls SET established_at = established_at - interval '1 hour' WHERE call_id = :id",
        {"id": call.call_id},
        ("call_duration_distribution 1 h+ calls",),
    )


def plant_sdr_duration(truth: Truth) -> Plant:
    leg = finished(truth, "publisher")
    key = f"stream_detail_records {leg.media_session_id}"
    return Plant(
        "UPDATE streams SET status_at = status_at + interval '10 seconds'"
        " WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        (f"{key} duration", f"{key} line"),
    )


def plant_subscribers(truth: Truth) -> Plant:
    """Every player of the keynote moved to another stream: its publisher's count drops to 0.

    (Moving one player is not always visible: a player that joined within the delivery
    tolerance of the publisher's start or end may or may not count, so the check admits a
    range, and a loaded machine widens it.)"""
    keynote = [leg for leg in truth.legs if leg.name == "keynote" and leg.started is not None]
    publisher = next(leg for leg in keynote if leg.role == "publisher")
    players = [leg.media_session_id for leg in keynote if leg.role == "player"]
    return Plant(
        "UPDATE streams SET name = 'elsewhere' WHERE media_session_id = ANY(:ids)",
        {"ids": players},
        (f"stream_detail_records {publisher.media_session_id} subscribers",),
    )


def plant_usage(truth: Truth) -> Plant:
    leg = finished(truth, "publisher")
    return Plant(
        "UPDATE streams SET app = 'elsewhere' WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        ("usage_minutes_per_app_day elsewhere/",),
    )


def plant_bug_report_day(truth: Truth) -> Plant:
    app = next(s.app for s in truth.sessions if s.bug_reports)
    return Plant(
        "UPDATE bug_reports SET submitted_at = submitted_at - interval '1 day'"
        " WHERE event_id = (SELECT event_id FROM bug_reports WHERE app = :app LIMIT 1)",
        {"app": app},
        (f"bug_reports_per_day {app}/",),
    )


def plant_viewers(truth: Truth) -> Plant:
    leg = finished(truth, "player")
    return Plant(
        "UPDATE streams SET name = 'elsewhere' WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        ("stream_viewers elsewhere row", f"stream_viewers {leg.name} total_viewers"),
    )


def plant_call_outcome(truth: Truth) -> Plant:
    call = next(c for c in truth.calls if c.established is not None)
    return Plant(
        "UPDATE calls SET established_at = NULL WHERE call_id = :id",
        {"id": call.call_id},
        ("call_outcomes * calls",),
    )


def plant_end_reason(truth: Truth) -> Plant:
    leg = finished(truth, "player")
    return Plant(
        "UPDATE streams SET info = 'Failed by error' WHERE media_session_id = :id",
        {"id": leg.media_session_id},
        ("stream_end_reasons * streams", f"stream_detail_records {leg.media_session_id} info"),
    )


PLANTS: dict[str, Callable[[Truth], Plant]] = {
    "keepalive_count": plant_keepalive,
    "concurrent_streams_per_minute": plant_concurrency,
    "session_duration_distribution": plant_session_duration,
    "call_duration_distribution": plant_talk_time,
    "stream_detail_records duration": plant_sdr_duration,
    "stream_detail_records subscribers": plant_subscribers,
    "usage_minutes_per_app_day": plant_usage,
    "bug_reports_per_day": plant_bug_report_day,
    "stream_viewers": plant_viewers,
    "call_outcomes": plant_call_outcome,
    "stream_end_reasons": plant_end_reason,
}


@pytest.mark.parametrize("planted", PLANTS)
def test_check_names_a_planted_wrong_figure(day: SimulatedDay, planted: str) -> None:
    plant = PLANTS[planted](day.truth)
    engine = create_engine(day.settings.database_url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(text(plant.sql), plant.params)
            printed = [str(m) for m in compare(day.truth, read_rows(conn))]
            transaction.rollback()
    finally:
        engine.dispose()
    for expected in plant.expected:
        assert any(line.startswith(expected) for line in printed), (expected, printed)


def test_check_exits_1_and_prints_the_mismatches(day: SimulatedDay) -> None:
    """The command itself: one leg ended a minute late, one call lost a hold (both restored
    afterwards)."""
    truth, env = day.truth, stack_env(day.settings)
    leg = next(leg for leg in truth.legs if leg.started is not None and not leg.lost_terminal)
    call = next(call for call in truth.calls if call.hold_count)
    shift = {"speed": truth.run.speed, "id": leg.media_session_id}
    engine = create_engine(day.settings.database_url)
    move_end = (
        "UPDATE streams SET status_at = status_at {sign} interval '60 seconds' / :speed"
        " WHERE media_session_id = :id"
    )
    move_hold = "UPDATE calls SET hold_count = hold_count {sign} 1 WHERE call_id = :id"
    try:
        with engine.begin() as conn:
            conn.execute(text(move_end.format(sign="+")), shift)
            conn.execute(text(move_hold.format(sign="-")), {"id": call.call_id})
        checked = cli("check", "--truth", str(day.truth_path), env=env)
    finally:
        with engine.begin() as conn:
            conn.execute(text(move_end.format(sign="-")), shift)
            conn.execute(text(move_hold.format(sign="+")), {"id": call.call_id})
        engine.dispose()
    assert checked.returncode == 1
    assert f"streams {leg.media_session_id} ended_at" in checked.stdout
    assert f"calls {call.call_id} hold_count" in checked.stdout
