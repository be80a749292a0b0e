"""Benchmark (not a test): a simulated WCS day end to end at a target hook rate.

    .venv/bin/python -m bench.simulate [--sessions 400] [--minutes 30] [--speed 100]
                                       [--burst 1000] [--workers 2] [--projectors 1]
                                       [--skip-e2e]

In one run it measures

- the **baseline**: the same schedule sent open-loop to a bare echo app (uvicorn), i.e. what the
  simulator's sender reaches on this machine with nothing behind the HTTP answer;
- **end to end**: the schedule sent to the real receiver (``--workers`` processes) on a fresh
  topic, with ``--projectors`` real projectors (one consumer group, timing scaled to the speed;
  by default as many as ``wcs-audit run`` starts) writing a fresh database: rates,
  receive latency, the projector's lag (every hook's, from its receipt to the commit that
  stored it, read from PostgreSQL's commit timestamps; and the newest stored ``received_at``
  behind the wall clock, sampled, with the drain time after the last hook), and ``check``'s
  mismatches;
- in both, the **CPU time per hook** of each component (sender, receiver, Kafka, projector,
  PostgreSQL, echo), from ``/proc``: what the machine's cores allow end to end.

Prints progress and a result line; writes JSON to ``bench/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.cpu import busy_seconds_by_role, per_hook_us, python_speed_ms, snapshot
from bench.lag import LagSampler, commit_lags, percentile
from bench.topics import create_topics, delete_topics
from bench.workdir import work_dir
from migrations.run import upgrade
from simulator.check import compare, read_projections
from simulator.load import LoadReport, send_day
from simulator.run import projector_env, record_delivery
from simulator.scenario import ALL_QUIRKS, Scenario
from simulator.schedule import Day, build_day
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import create_database, drop_database


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], health: str | None, log: Path) -> Iterator[None]:
    """A child process (own process group) until the block ends; waits for ``health``."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        for _ in range(300):
            if health is None:
                break
            with contextlib.suppress(OSError):
                urllib.request.urlopen(health, timeout=1).close()
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(1)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def load_summary(report: LoadReport) -> dict[str, Any]:
    return {
        "sent": report.sent,
        "seconds": round(report.seconds, 2),
        "target_rate": round(report.target_rate),
        "achieved_rate": round(report.achieved_rate),
        "p50_ms": round(report.p50_ms, 1),
        "p90_ms": round(report.p90_ms, 1),
        "p99_ms": round(report.p99_ms, 1),
        "max_ms": round(report.max_ms, 1),
        "sender_max_lag_ms": round(report.max_lag_ms, 1),
        "statuses": report.statuses,
    }


def baseline(day: Day, scenario: Scenario, work: Path) -> dict[str, Any]:
    """The schedule against the bare echo app: the sender's own ceiling here."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.echo_app:app", "--port", str(port),
            "--http", "httptools", "--loop", "uvloop", "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with server(argv, dict(os.environ), None, work / "echo.log"):
        time.sleep(1)
        before = snapshot()
        report = asyncio.run(send_day(day.sends, url + "/apps/wcs", scenario.speed))
        used = busy_seconds_by_role(before, snapshot())
    return load_summary(report) | {"cpu_us_per_hook": per_hook_us(used, report.sent)}


def end_to_end(
    day: Day, scenario: Scenario, workers: int, projectors: int, work: Path
) -> dict[str, Any]:
    """The schedule through receiver, Kafka and ``projectors`` projectors (one consumer
    group) into a fresh database, checked."""
    base = Settings.from_env(os.environ)
    suffix = uuid.uuid4().hex[:8]
    url = base.database_url.rsplit("/", 1)[0] + f"/bench_sim_{suffix}"
    settings = base.replace(
        topic=f"bench.sim.{suffix}", rejected_topic=f"bench.sim.{suffix}.rejected",
        database_url_env=url,
    )  # fmt: skip
    http_port = free_port()
    env = dict(os.environ) | {
        "WCS_AUDIT_TOPIC": settings.topic, "WCS_AUDIT_REJECTED_TOPIC": settings.rejected_topic,
        "WCS_AUDIT_DATABASE_URL": url, "WCS_AUDIT_HTTP_PORT": str(http_port),
        "WCS_AUDIT_RECEIVER_WORKERS": str(workers), "WCS_AUDIT_SPOOL_DIR": str(work / "spool"),
        "WCS_AUDIT_PROJECTOR_GROUP": f"bench-sim-{suffix}", "WCS_AUDIT_LOG_LEVEL": "WARNING",
    } | projector_env(scenario)  # fmt: skip
    create_database(url)
    asyncio.run(create_topics(settings, [settings.topic]))
    receiver_url = f"http://127.0.0.1:{http_port}"
    cli = [sys.executable, "-m", "wcs_audit.cli"]
    try:
        upgrade(url)
        sampler = LagSampler(url, settings.topic, interval_s=0.25)
        with contextlib.ExitStack() as running:
            running.enter_context(
                server([*cli, "receiver"], env, receiver_url + "/healthz", work / "receiver.log")
            )
            for index in range(projectors):
                own = env | {"WCS_AUDIT_PROJECTOR_METRICS_PORT": str(free_port())}
                log = work / f"projector-{index}.log"
                running.enter_context(server([*cli, "projector"], own, None, log))
            sampler.start()
            before = snapshot()
            progress(
                f"end to end: {len(day.sends)} hooks, {workers} receiver worker(s), "
                f"{projectors} projector(s) …"
            )
            report = asyncio.run(send_day(day.sends, receiver_url + "/apps/wcs", scenario.speed))
            accepted = report.statuses.get("200", 0)
            drain = sampler.wait_for(accepted, timeout_s=600)
            used = busy_seconds_by_role(before, snapshot())
            sampler.stop.set()
            sampler.join()
        truth = day.truth
        record_delivery(truth, scenario, day.sends, report)
        mismatches = compare(truth, read_projections(url))
        exact = commit_lags(url)
    finally:
        asyncio.run(delete_topics(settings, [settings.topic, settings.rejected_topic]))
        drop_database(url)
    lags = [lag for _, _, lag in sampler.samples if lag is not None]
    kinds = Counter(f"{m.table}.{m.column}" for m in mismatches)
    return {
        "load": load_summary(report),
        "cpu_us_per_hook": per_hook_us(used, report.sent),  # until the projector drained
        "projector_drain_s_after_last_answer": None if drain is None else round(drain, 1),
        "lag_of_every_hook": exact,  # receipt to commit; None if the server has no timestamps
        "projector_lag_s_max": round(max(lags), 2) if lags else None,
        "projector_lag_s_p50": percentile(lags, 0.50),
        "projector_lag_s_p99": percentile(lags, 0.99),
        "tolerance_sim_s": round(truth.run.tolerance_s, 2),
        "mismatches": len(mismatches),
        "mismatch_kinds": dict(kinds.most_common(10)),
        "mismatch_examples": [str(m) for m in mismatches[:5]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--speed", type=float, default=100)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--projectors", type=int, default=Settings.from_env(os.environ).projector_processes
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-e2e", action="store_true", help="only the sender baseline")
    parser.add_argument("--skip-baseline", action="store_true", help="only end to end")
    args = parser.parse_args()
    quirks = replace(ALL_QUIRKS, burst=args.burst)
    scenario = Scenario(
        seed=args.seed, nodes=args.nodes, sessions=args.sessions, duration_s=args.minutes * 60,
        speed=args.speed, quirks=quirks,
    )  # fmt: skip
    started = time.perf_counter()
    day = build_day(scenario)
    progress(f"built {len(day.sends)} hooks in {time.perf_counter() - started:.1f}s")
    with work_dir("bench-simulate-") as work:
        result: dict[str, Any] = {
            "scenario": asdict(scenario),
            "hooks": len(day.sends),
            "python_speed_ms": python_speed_ms(),
        }
        if not args.skip_baseline:
            progress("baseline: the same schedule against the bare echo app …")
            result["baseline_echo"] = baseline(day, scenario, work)
        if not args.skip_e2e:
            result["end_to_end"] = end_to_end(day, scenario, args.workers, args.projectors, work)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"simulate-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
