"""``wcs-audit run``: the receiver and several projector processes, over real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import psycopg
import pytest

from migrations.run import upgrade
from tests.conftest import wait_for
from tests.ingest.conftest import free_port, receiver_env
from tests.samples import SAMPLES
from wcs_audit.cli import projector_settings
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import libpq_conninfo

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_projector_metrics_ports_follow_the_configured_one() -> None:
    settings = Settings.from_env({}).replace(projector_processes=3, projector_metrics_port=9082)
    assert [s.projector_metrics_port for s in projector_settings(settings)] == [9082, 9083, 9084]
    any_port = settings.replace(projector_metrics_port=0)
    assert [s.projector_metrics_port for s in projector_settings(any_port)] == [0, 0, 0]


def test_run_starts_the_receiver_and_two_projectors_that_share_the_partitions(
    settings: Settings, tmp_path: Path
) -> None:
    upgrade(settings.database_url)
    http_port, metrics_port = free_port(), free_port()
    env = receiver_env(
        settings,
        tmp_path / "spool",
        http_port,
        database_url=settings.database_url,
        projector_group="test-run",
        projector_processes="2",
        projector_metrics_port=str(metrics_port),
        log_level="WARNING",
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "wcs_audit.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        health = [
            f"http://127.0.0.1:{p}/healthz" for p in (http_port, metrics_port, metrics_port + 1)
        ]
        wait_for(lambda: all(answers(url) for url in health), within=60)
        sessions = [f"run-session-{index}" for index in range(30)]
        body = orjson.loads((SAMPLES / "connect.json").read_bytes())
        for session in sessions:  # keys spread over the topic's partitions
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/apps/wcs/connect",
                data=orjson.dumps(body | {"sessionId": session}),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

        def projected() -> bool:
            with psycopg.connect(libpq_conninfo(settings.database_url, None)) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM sessions WHERE session_id LIKE 'run-session-%'"
                ).fetchone()
            return rows is not None and rows[0] == len(sessions)

        wait_for(projected, within=60)
        for port in (metrics_port, metrics_port + 1):  # each consumed a share of the 3 partitions
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                text = page.read().decode()
            records = [
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("wcs_audit_projector_records_total")
            ]
            assert sum(records) > 0, text
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=60)
