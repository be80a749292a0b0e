"""A small simulated day, every quirk on, end to end: simulate (CLI, its own process) ->
receiver (real socket) -> Kafka -> projector (its own process) -> PostgreSQL -> check."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from migrations.run import upgrade
from simulator.check import compare, read_projections
from simulator.run import projector_env
from simulator.scenario import Quirks, Scenario
from simulator.truth import read_truth
from tests.ingest.conftest import running_receiver
from wcs_audit.settings import Settings

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


async def test_simulated_day_matches_the_projections(settings: Settings, tmp_path: Path) -> None:
    upgrade(settings.database_url)
    truth_path = tmp_path / "truth.jsonl"
    receiver_settings = settings.replace(spool_dir=tmp_path / "spool", produce_timeout_ms=1000)
    env = stack_env(settings)
    with running_projector(settings, SCENARIO):
        async with running_receiver(receiver_settings) as url:
            args = simulate_args(SCENARIO, truth_path, url + "/apps/wcs")
            simulated = await asyncio.to_thread(cli, *args, env=env)
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        truth = read_truth(truth_path)
        stored = await asyncio.to_thread(wait_for_events, settings.database_url, truth.run.hooks)
        assert stored == truth.run.hooks
    run = truth.run
    assert run.duplicates > 0, "every quirk must be exercised"
    assert run.lost_terminals > 0
    assert sum(1 for leg in truth.legs if leg.name == "keynote") > QUIRKS.burst

    mismatches = await asyncio.to_thread(compare, truth, read_projections(settings.database_url))
    assert [str(m) for m in mismatches] == []
    checked = await asyncio.to_thread(cli, "check", "--truth", str(truth_path), env=env)
    assert checked.returncode == 0, checked.stdout

    # The comparison can fail: one leg ended a minute late, one call lost a hold.
    leg = next(leg for leg in truth.legs if leg.started is not None and not leg.lost_terminal)
    call = next(call for call in truth.calls if call.hold_count)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE streams SET status_at = status_at + interval '60 seconds' / :speed"
                " WHERE media_session_id = :id"
            ),
            {"speed": run.speed, "id": leg.media_session_id},
        )
        conn.execute(
            text("UPDATE calls SET hold_count = hold_count - 1 WHERE call_id = :id"),
            {"id": call.call_id},
        )
    engine.dispose()
    checked = await asyncio.to_thread(cli, "check", "--truth", str(truth_path), env=env)
    assert checked.returncode == 1
    assert f"streams {leg.media_session_id} ended_at" in checked.stdout
    assert f"calls {call.call_id} hold_count" in checked.stdout
