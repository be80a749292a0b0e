"""Benchmark (not a test): events/s from Kafka into PostgreSQL for a keep-alive-heavy mix.

    .venv/bin/python -m bench.projector [--sessions 2000] [--keepalives 20]

Builds a fresh topic and database on the local stack, produces the story of ``--sessions``
WCS sessions (each: connect, ESTABLISHED, one publisher and two players with
``--keepalives`` keep-alives per leg, then the ends and DISCONNECTED: about 85% keep-alives),
runs the real projector over it and, in the same run, measures the ceiling: a raw
``COPY`` of the same ``hook_events`` rows into an identical table. Prints progress and a result
line; writes JSON to ``bench/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from bench.topics import create_topics, delete_topics
from ingest.envelope import Envelope, uuid7
from migrations.run import upgrade
from projections.app import create_app
from projections.consume import BatchResult
from projections.decode import Event, decode_record
from projections.stage import EVENT_COLUMNS, JsonbDumper, copy_type, event_rows
from projections.tables import hook_events
from wcs_audit.heap import settle_heap
from wcs_audit.settings import Settings
from wcs_audit.stack.postgres import create_database, drop_database, libpq_conninfo

NODE = "Qm7t2ZxV9kLp4RsA1bNc8DeFgH3jKwYu@203.0.113.10"
START_US = 1_719_835_200_000_000


def stream_body(session: str, leg: str, name: str, publisher: bool, status: str) -> bytes:
    body = {
        "nodeId": NODE,
        "appKey": "defaultApp",
        "sessionId": session,
        "mediaSessionId": leg,
        "name": name,
        "published": publisher,
        "hasVideo": True,
        "hasAudio": True,
        "status": status,
        "audioCodec": "opus",
        "videoCodec": "VP8",
        "record": False,
        "width": 1280,
        "height": 720,
        "bitrate": 0,
        "quality": 0,
        "createDate": START_US // 1000,
        "mediaType": "publish" if publisher else "play",
        "mediaProvider": "WebRTC",
    }
    return json.dumps(body).encode()


def session_hooks(n: int, keepalives: int) -> Iterator[tuple[str, bytes, int]]:
    """(hook, body, seconds) of one session's life."""
    session = str(uuid.UUID(int=n))
    context = {"nodeId": NODE, "appKey": "defaultApp", "sessionId": session}
    yield "connect", json.dumps({**context, "clientVersion": "2.0"}).encode(), 0
    yield "ConnectionStatusEvent", json.dumps({**context, "status": "ESTABLISHED"}).encode(), 1
    legs = [(f"{n}-pub", True), (f"{n}-play-1", False), (f"{n}-play-2", False)]
    for leg, publisher in legs:
        active = "PUBLISHING" if publisher else "PLAYING"
        yield "StreamStatusEvent", stream_body(session, leg, f"s{n}", publisher, active), 2
        for k in range(keepalives):
            body = stream_body(session, leg, f"s{n}", publisher, active)
            yield "StreamKeepAliveEvent", body, 10 * (k + 1)
        end = "UNPUBLISHED" if publisher else "STOPPED"
        body = stream_body(session, leg, f"s{n}", publisher, end)
        yield "StreamStatusEvent", body, 10 * keepalives + 5
    status = {**context, "status": "DISCONNECTED"}
    yield "ConnectionStatusEvent", json.dumps(status).encode(), 10 * keepalives + 6


def envelopes(sessions: int, keepalives: int) -> list[Envelope]:
    """Every session's hooks, interleaved in time order like a live server sends them."""
    timeline = [
        (seconds * 1_000_000 + n, hook, body)
        for n in range(sessions)
        for hook, body, seconds in session_hooks(n, keepalives)
    ]
    timeline.sort(key=lambda item: item[0])
    return [
        Envelope(
            event_id=uuid7(START_US + at),
            hook=hook,
            received_at_us=START_US + at,
            remote_addr="203.0.113.10",
            node_id=NODE,
            session_id=json.loads(body)["sessionId"],
            value=body,
        )
        for at, hook, body in timeline
    ]


async def produce(settings: Settings, batch: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i, envelope in enumerate(batch, start=1):
            await producer.send(
                settings.topic, envelope.value, key=envelope.key, headers=envelope.headers()
            )
            if i % 20_000 == 0:
                print(f"\rproduce  {i}/{len(batch)}", end="", file=sys.stderr, flush=True)
        await producer.flush()
    finally:
        await producer.stop()
    print(file=sys.stderr)


@dataclass(slots=True)
class Timing:
    started: float = 0.0
    cpu_started: float = 0.0
    cpu_seconds: float = 0.0
    first_batch: float = 0.0
    first_batch_records: int = 0
    last_batch: float = 0.0
    applied: int = 0
    batches: int = 0


async def run_projector(settings: Settings, total: int) -> Timing:
    """Runs the projector until ``total`` records are committed; times the batches."""
    timing = Timing()
    done = asyncio.Event()

    async def observe(point: str, result: BatchResult) -> None:
        if point != "committed":
            return
        now = time.perf_counter()
        if not timing.first_batch:
            timing.first_batch, timing.first_batch_records = now, result.records
        timing.last_batch = now
        timing.cpu_seconds = time.process_time() - timing.cpu_started
        timing.applied += result.records
        timing.batches += 1
        rate = timing.applied / (now - timing.started)
        print(
            f"\rproject  {timing.applied}/{total}  {rate:,.0f}/s",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if timing.applied >= total:
            done.set()

    projector = create_app(settings, fault=observe)
    timing.started, timing.cpu_started = time.perf_counter(), time.process_time()
    await projector.start()
    settle_heap()  # as `wcs-audit projector` does once started
    try:
        await asyncio.wait_for(done.wait(), timeout=1800)
    finally:
        await projector.stop()
    print(file=sys.stderr)
    return timing


def copy_ceiling(settings: Settings, batch: list[Envelope]) -> float:
    """Seconds for a raw binary COPY of the same ``hook_events`` rows into an identical table.

    The rows are built before the clock starts: this is PostgreSQL's own speed for these rows
    (same columns, same indexes, the projector's COPY format), the ceiling for any projector.
    """
    rows = event_rows(decoded(batch), ())
    columns = [hook_events.c[name] for name in EVENT_COLUMNS]
    names = ", ".join(EVENT_COLUMNS)
    with psycopg.connect(libpq_conninfo(settings.database_url, None)) as conn:
        conn.execute("CREATE TABLE copy_ceiling (LIKE hook_events INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.adapters.register_dumper(None, JsonbDumper)
            with cur.copy(f"COPY copy_ceiling ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([copy_type(c) for c in columns])
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def decoded(batch: list[Envelope]) -> list[Event]:
    @dataclass(frozen=True)
    class Record:
        topic: str
        partition: int
        offset: int
        value: bytes | None
        headers: list[tuple[str, bytes]]

    events = [decode_record(Record("t", 0, i, e.value, e.headers())) for i, e in enumerate(batch)]
    return [e for e in events if isinstance(e, Event)]


async def main(sessions: int, keepalives: int) -> dict[str, Any]:
    base = Settings.from_env(os.environ)
    suffix = uuid.uuid4().hex[:8]
    url = base.database_url.rsplit("/", 1)[0] + f"/bench_{suffix}"
    settings = base.replace(
        topic=f"bench.hooks.{suffix}",
        database_url_env=url,
        projector_group=f"bench-{suffix}",
    )
    batch = envelopes(sessions, keepalives)
    gc.freeze()  # the benchmark's own records: not the projector's garbage to scan
    keepalive_share = sum(e.hook == "StreamKeepAliveEvent" for e in batch) / len(batch)
    create_database(url)
    await create_topics(settings, [settings.topic])
    try:
        upgrade(url)
        await produce(settings, batch)
        timing = await run_projector(settings, len(batch))
        copy_seconds = copy_ceiling(settings, batch)
    finally:
        await delete_topics(settings, [settings.topic])
        drop_database(url)
    overall = len(batch) / (timing.last_batch - timing.started)
    steady_span = timing.last_batch - timing.first_batch  # zero when it all fit one batch
    steady = (len(batch) - timing.first_batch_records) / steady_span if steady_span else overall
    ceiling = len(batch) / copy_seconds
    return {
        "events": len(batch),
        "keepalive_share": round(keepalive_share, 3),
        "batch_size": settings.projector_batch_size,
        "mean_batch": round(len(batch) / timing.batches),
        "projector_events_per_s": round(steady),
        "projector_events_per_s_incl_group_join": round(overall),
        "projector_python_cpu_us_per_event": round(timing.cpu_seconds / len(batch) * 1e6, 1),
        "copy_rows_per_s": round(ceiling),
        "share_of_copy": round(steady / ceiling, 3),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--keepalives", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(main(args.sessions, args.keepalives))
    print(json.dumps(result))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"projector-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
