"""Benchmark (not a test): ``wcs-audit projections prune`` on a large audit log, against the
two bare SQL statements an operator ran by hand before it, on a copy of the same database.

    .venv/bin/python -m bench.prune [--hooks 10000000] [--share 4] [--days 300]
                                    [--prune-days 30] [--rounds 2]

A fresh database is migrated and filled (in SQL) with ``--hooks`` rows of ``hook_log``
received evenly over ``--days`` days, each body shared by ``--share`` consecutive hooks (a
leg's keep-alives repeat one body) and about 600 bytes of JSON. Each round copies it twice
(``CREATE DATABASE … TEMPLATE``), runs a checkpoint and reads both copies, then deletes the
hooks received in the first ``--prune-days`` days, with the bodies only they had, on each
copy, the order alternating from round to round (the first ran slower):
- **prune**: :func:`projections.prune.prune` (chunks of 50,000, then the bodies' step);
- **bare**: ``DELETE FROM hook_log WHERE received_at < cut`` and the bodies' ``DELETE``, each
  one statement.
Prints the medians of the seconds of each (hooks' step and bodies' step), hooks deleted per
second, what is left and the database's size after a ``VACUUM``; writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.cpu import python_speed_ms
from migrations.run import upgrade
from projections.progress import Progress
from projections.prune import DELETE_BODIES, prune
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import create_database, drop_database, libpq_conninfo

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=UTC)

FILL_PAYLOADS = """
INSERT INTO hook_payloads (payload_id, payload)
SELECT decode(md5(b::text), 'hex'),
       jsonb_build_object('mediaSessionId', md5(b::text), 'appKey', 'defaultApp',
                          'name', 'stream-' || (b %% 997), 'pad', repeat('x', 480))
FROM generate_series(0, %(bodies)s - 1) AS b
"""
FILL_HOOKS = """
INSERT INTO hook_log (event_id, hook, known, received_at, session_id, payload_id, body_hash,
                      suspected_retry, kafka_partition, kafka_offset)
SELECT gen_random_uuid(), 'StreamKeepAliveEvent', true,
       %(start)s + i * %(step)s * interval '1 microsecond', 's-' || (i / (%(share)s * 20)),
       decode(md5((i / %(share)s)::text), 'hex'), md5(i::text), false, i %% 6, i
FROM generate_series(0, %(hooks)s - 1) AS i
"""
SIZE = "SELECT pg_database_size(current_database())"
LEFT = "SELECT (SELECT count(*) FROM hook_log), (SELECT count(*) FROM hook_payloads)"


def fill(url: str, hooks: int, share: int, days: float) -> None:
    """Migrates the database at ``url`` and fills its audit log (see the module's text)."""
    upgrade(url)
    step_us = days * 86_400_000_000 / hooks
    with psycopg.connect(libpq_conninfo(url)) as conn:
        conn.execute(FILL_PAYLOADS, {"bodies": -(-hooks // share)})
        conn.execute(FILL_HOOKS, {"start": START, "step": step_us, "share": share, "hooks": hooks})
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def copy_database(template: str, copy: str) -> None:
    """Creates the database of URL ``copy`` as a copy of that of ``template``."""
    with psycopg.connect(libpq_conninfo(template, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(str(make_url(copy).database)),
                sql.Identifier(str(make_url(template).database)),
            )
        )


def settle(urls: list[str]) -> None:
    """A checkpoint (the fill's writes flushed, not during a measurement) and one read of
    each database's audit log (into the cache alike: the first run was slower otherwise)."""
    for url in urls:
        with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            conn.execute("SELECT count(*) FROM hook_log").fetchone()
            conn.execute("SELECT count(*) FROM hook_payloads").fetchone()


def state(url: str) -> dict[str, int]:
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM")  # the deleted rows' space, as autovacuum would free it
        size = conn.execute(SIZE).fetchone()
        hooks, bodies = conn.execute(LEFT).fetchone() or (0, 0)
    return {"bytes": size[0] if size else 0, "hooks_left": hooks, "bodies_left": bodies}


def run_prune(settings: Settings, cut: datetime) -> dict[str, float]:
    """:func:`prune`, timed; its hooks' step ends with its last progress report."""
    seen: list[Progress] = []

    def show(progress: Progress) -> None:
        seen.append(progress)
        print(f"\r  prune {progress.done}/{progress.total} hooks", end="", file=sys.stderr)

    started = time.perf_counter()
    pruned = asyncio.run(prune(settings, cut, show))
    print(file=sys.stderr)
    return {
        "seconds": time.perf_counter() - started,
        "hooks_seconds": seen[-1].seconds if seen else 0.0,
        "hooks": pruned.hooks,
        "payloads": pruned.payloads,
    }


def run_bare(url: str, cut: datetime) -> dict[str, float]:
    """The two statements of docs/operations.md before the prune command, timed."""
    started = time.perf_counter()
    with psycopg.connect(libpq_conninfo(url)) as conn:
        hooks = conn.execute("DELETE FROM hook_log WHERE received_at < %s", (cut,)).rowcount
        conn.commit()
        hooks_seconds = time.perf_counter() - started
        payloads = conn.execute(str(DELETE_BODIES)).rowcount
        conn.commit()
    return {
        "seconds": time.perf_counter() - started,
        "hooks_seconds": hooks_seconds,
        "hooks": hooks,
        "payloads": payloads,
    }


def measure_round(
    base: Settings, template: str, cut: datetime, suffix: str, bare_first: bool
) -> dict[str, dict[str, float]]:
    """One round: two copies of ``template``, settled, then the prune on one and the bare
    statements on the other, in the order given."""
    urls = {name: f"{template}_{name}_{suffix}" for name in ("prune", "bare")}
    runs = {
        "prune": lambda: run_prune(base.replace(database_url_env=urls["prune"]), cut),
        "bare": lambda: run_bare(urls["bare"], cut),
    }
    measured: dict[str, dict[str, float]] = {}
    try:
        for url in urls.values():
            copy_database(template, url)
        settle(list(urls.values()))
        for name in ("bare", "prune") if bare_first else ("prune", "bare"):
            print(f"{name} …", file=sys.stderr, flush=True)
            measured[name] = runs[name]() | state(urls[name])
    finally:
        for url in urls.values():
            drop_database(url)
    return measured


def main(args: argparse.Namespace) -> dict[str, Any]:
    speed_ms = python_speed_ms()
    base = Settings.from_env(os.environ)
    suffix = uuid.uuid4().hex[:8]
    template = base.database_url.rsplit("/", 1)[0] + f"/bench_prune_{suffix}"
    cut = START + timedelta(days=args.prune_days)
    results: dict[str, Any] = {"args": vars(args), "python_speed_ms": speed_ms, "rounds": []}
    try:
        create_database(template)
        print(f"filling {args.hooks:,} hooks …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        fill(template, args.hooks, args.share, args.days)
        results["fill_seconds"] = time.perf_counter() - started
        results["before"] = state(template)
        for n in range(args.rounds):
            print(f"round {n + 1} of {args.rounds}", file=sys.stderr, flush=True)
            measured = measure_round(base, template, cut, str(n), bare_first=n % 2 == 1)
            results["rounds"].append(measured)
    finally:
        drop_database(template)
    return results


def report(results: dict[str, Any]) -> None:
    out = ROOT / "bench" / "results" / f"prune-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    before, rounds = results["before"], results["rounds"]
    print(
        f"audit log: {before['hooks_left']:,} hooks, {before['bodies_left']:,} bodies, "
        f"{before['bytes'] / 2**20:,.0f} MiB (filled in {results['fill_seconds']:.1f}s); "
        f"medians of {len(rounds)} round(s), the order alternating"
    )
    for name in ("prune", "bare"):
        last = rounds[-1][name]
        seconds = statistics.median(r[name]["seconds"] for r in rounds)
        hooks_s = statistics.median(r[name]["hooks_seconds"] for r in rounds)
        print(
            f"{name:6} {seconds:6.1f}s (hooks {hooks_s:.1f}s, bodies {seconds - hooks_s:.1f}s)  "
            f"{last['hooks'] / seconds:>9,.0f} hooks/s  deleted {last['hooks']:,} hooks, "
            f"{last['payloads']:,} bodies; left {last['hooks_left']:,} hooks, "
            f"{last['bodies_left']:,} bodies, {last['bytes'] / 2**20:,.0f} MiB"
        )
    ratios = [r["prune"]["seconds"] / r["bare"]["seconds"] for r in rounds]
    print(
        f"prune / bare time: {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    )
    print(f"machine: {results['python_speed_ms']} ms for bench.cpu.python_speed_ms")
    print(f"results: {out}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.prune", description=__doc__)
    parser.add_argument("--hooks", type=int, default=10_000_000)
    parser.add_argument("--share", type=int, default=4, help="hooks per body")
    parser.add_argument("--days", type=float, default=300.0)
    parser.add_argument("--prune-days", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


if __name__ == "__main__":
    report(main(parse()))
