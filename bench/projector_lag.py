"""Benchmark (not a test): the projector's lag at a fixed hook rate, receiver aside.

    .venv/bin/python -m bench.projector_lag [--rate 5000] [--seconds 30] [--sessions 3000]
                                            [--projectors 1]

Records shaped like the receiver's (the keep-alive-heavy mix of ``bench.projector``, stamped
``received-at`` = the moment they are sent) go to a fresh topic open-loop at ``--rate`` per
second through the receiver's own producer and batcher, as acknowledged hooks would;
``--projectors`` real projectors (``wcs-audit projector`` processes, one consumer group; by
default as many as ``wcs-audit run`` starts) write a fresh database. The lag of every hook is
read afterwards from PostgreSQL's commit timestamps: the commit of the transaction that stored
its row minus its ``received-at`` (``lag_of_every_hook``: p50/p99/max). Every 100 ms during the
run, the newest stored ``received_at`` is also compared with the wall clock (``sampled_newest``:
with one projector it bounds the lag of every hook sent before it; with several it can hide
the slower ones). Prints the achieved rate, both lags and the CPU per hook of each component;
writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cpu import busy_seconds_by_role, per_hook_us, python_speed_ms, snapshot
from bench.lag import LagSampler, commit_lags, percentile
from bench.projector import envelopes
from bench.topics import create_topics, delete_topics
from ingest.app import make_producer
from ingest.batching import Batcher
from ingest.envelope import Envelope, uuid7
from ingest.spool import SpooledRecord
from migrations.run import upgrade
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import create_database, drop_database

TICK_S = 0.01
PARTITIONS = 6


def restamped(envelope: Envelope, now_us: int) -> Envelope:
    """``envelope`` as if the receiver had answered it at ``now_us``."""
    return Envelope(
        event_id=uuid7(now_us),
        hook=envelope.hook,
        received_at_us=now_us,
        remote_addr=envelope.remote_addr,
        node_id=envelope.node_id,
        session_id=envelope.session_id,
        value=envelope.value,
    )


async def send_at_rate(
    settings: Settings, batch: list[Envelope], rate: float, seconds: float
) -> tuple[int, float]:
    """Sends ``batch`` (cycled) at ``rate`` per second for ``seconds`` with the receiver's
    own producer and batcher (so Kafka gets the receiver's batches, and the sender costs what
    the receiver's produce path costs, not aiokafka's per-record ``send``); returns how many
    records were sent (all acknowledged) and the rate achieved (per second of sending, until
    the last acknowledgement)."""
    producer = make_producer(settings)
    await producer.start()
    batcher = Batcher(
        producer,
        {settings.topic: PARTITIONS},
        timeout_s=30.0,
        interval_s=0.0,
        observe=lambda _: None,
    )
    try:
        started, sent, pending = time.monotonic(), 0, set()
        while (elapsed := time.monotonic() - started) < seconds:
            for _ in range(int(elapsed * rate) - sent):  # open loop: catch up to the schedule
                envelope = restamped(batch[sent % len(batch)], time.time_ns() // 1000)
                record = SpooledRecord(
                    settings.topic, envelope.key, envelope.value, envelope.headers()
                )
                pending.add(batcher.add(record))
                sent += 1
            if int(elapsed) != int(elapsed - TICK_S):  # about once a second
                print(f"\rsent {sent}", end="", file=sys.stderr, flush=True)
            await asyncio.sleep(TICK_S)
        outcomes = await asyncio.gather(*(joined.fate for joined in pending))
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} batches failed, first: {failed[0]!r}")
        print(file=sys.stderr)
        return sent, sent / (time.monotonic() - started)
    finally:
        await batcher.close()
        await producer.stop()


def main(rate: float, seconds: float, sessions: int, projectors: int) -> dict[str, Any]:
    speed_ms = python_speed_ms()
    base = Settings.from_env(os.environ)
    suffix = uuid.uuid4().hex[:8]
    url = base.database_url.rsplit("/", 1)[0] + f"/bench_lag_{suffix}"
    settings = base.replace(
        topic=f"bench.lag.{suffix}", database_url_env=url, projector_group=f"bench-lag-{suffix}"
    )
    batch = envelopes(sessions, 20)
    create_database(url)
    asyncio.run(create_topics(settings, [settings.topic], PARTITIONS))
    env = dict(os.environ) | {
        "WCS_AUDIT_TOPIC": settings.topic,
        "WCS_AUDIT_DATABASE_URL": url,
        "WCS_AUDIT_PROJECTOR_GROUP": settings.projector_group,
        "WCS_AUDIT_PROJECTOR_METRICS_PORT": "0",
        "WCS_AUDIT_LOG_LEVEL": os.environ.get("WCS_AUDIT_LOG_LEVEL", "WARNING"),
    }
    sampler = LagSampler(url, settings.topic, interval_s=0.1)
    running: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(url)
        for _ in range(projectors):  # one consumer group: the partitions are shared out
            running.append(
                subprocess.Popen([sys.executable, "-m", "wcs_audit.cli", "projector"], env=env)
            )
        time.sleep(3)  # joins the group before the clock starts
        sampler.start()
        before = snapshot()
        sent, achieved = asyncio.run(send_at_rate(settings, batch, rate, seconds))
        sent_until = time.time()
        # every record sent: the newest hooks, with the longest lags, are in the figures
        drained = sampler.wait_for(sent, timeout_s=120)
        used = busy_seconds_by_role(before, snapshot())
        exact = commit_lags(url)
    finally:
        sampler.stop.set()
        for projector in running:
            projector.terminate()
        for projector in running:
            projector.wait(timeout=60)
        asyncio.run(delete_topics(settings, [settings.topic]))
        drop_database(url)
    # while sending: once it stops, "now - newest" grows with no hook waiting
    lags = [lag for at, _, lag in sampler.samples if lag is not None and at <= sent_until]
    return {
        "target_rate": rate,
        "achieved_rate": round(achieved),
        "sent": sent,
        "seconds": seconds,
        "stored": sampler.samples[-1][1] if sampler.samples else 0,
        "drain_s_after_last_send": None if drained is None else round(drained, 2),
        "lag_of_every_hook": exact,  # from commit timestamps; None if the server has none
        "sampled_newest_lag_s_p50": percentile(lags, 0.50),
        "sampled_newest_lag_s_p99": percentile(lags, 0.99),
        "sampled_newest_lag_s_max": round(max(lags), 2) if lags else None,
        "cpu_us_per_hook": per_hook_us(used, sent),  # sender: the producer
        "cpus": os.cpu_count(),
        "python_speed_ms": speed_ms,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument(
        "--projectors", type=int, default=Settings.from_env(os.environ).projector_processes
    )
    args = parser.parse_args()
    result = main(args.rate, args.seconds, args.sessions, args.projectors)
    print(json.dumps(result))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"projector-lag-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
