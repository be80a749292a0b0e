"""Benchmark (not a test): events/s from Kafka into PostgreSQL for a keep-alive-heavy mix.

    .venv/bin/python -m bench.projector [--sessions 2000] [--keepalives 20] [--rounds 3]
                                        [--projectors 1] [--history 0]

Produces, once, to a fresh topic the story of ``--sessions`` WCS sessions as the receiver
writes it (each: connect, ESTABLISHED, one publisher and two players with ``--keepalives``
keep-alives per leg, then the ends and DISCONNECTED: about 85% keep-alives; bodies are the
reference samples with the session's ids, secrets redacted as the receiver redacts them).
Then, ``--rounds`` times, into a fresh database (with ``--history N``, ``hook_events``
first gets about N older hooks, copies of the story a day further back each: a table in
service, whose size the planner's costs follow, rather than an empty one):

- **projector**: ``--projectors`` real projector processes (``wcs-audit projector``, one
  consumer group; by default as many as ``wcs-audit run`` starts) consume the whole topic; the
  rate and the CPU are taken from the first batch committed once all have joined the group
  (read from their logs) to the last (positions polled every 20 ms), so process start and the
  group join are left out;
- **ceiling**: a raw binary ``COPY`` of the same ``hook_events`` rows into an identical table
  (same indexes, same history), PostgreSQL's own speed for these rows.

Prints progress, each round, and each figure's median and range over the rounds, with the CPU
per event of the projectors, of PostgreSQL (every backend), of Kafka and of the whole machine,
and the share of the cores' time the hypervisor took away meanwhile (``steal_share``);
writes JSON to ``bench/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer

from bench.cpu import (
    busy_seconds_by_role,
    machine_busy_s,
    machine_steal_s,
    python_speed_ms,
    snapshot,
)
from bench.topics import create_topics, delete_topics
from bench.workdir import work_dir
from ingest.envelope import Envelope, uuid7
from ingest.redact import Redactor
from migrations.run import upgrade
from projections.decode import Event, decode_record
from projections.stage import EVENT_COLUMNS, JsonbDumper, copy_type, event_rows
from projections.tables import hook_events
from wcs_audit.settings import DEFAULT_SECRET_FIELDS, Settings
from wcs_audit.stack.postgres import create_database, drop_database, libpq_conninfo

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "wcs" / "samples"
START_US = 1_719_835_200_000_000
POLL_S = 0.02


def progress(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def sample(hook: str) -> dict[str, Any]:
    """The reference body of ``hook``."""
    body: dict[str, Any] = orjson.loads((SAMPLES / f"{hook}.json").read_bytes())
    return body


class Bodies:
    """The sample bodies, re-identified for each session and leg."""

    def __init__(self) -> None:
        self.connect = sample("connect")
        self.connection = sample("ConnectionStatusEvent")
        self.stream = sample("StreamStatusEvent")
        self.keepalive = sample("StreamKeepAliveEvent")

    def session(self, template: dict[str, Any], session: str, **fields: Any) -> bytes:
        return orjson.dumps({**template, "sessionId": session, **fields})

    def leg(self, template: dict[str, Any], session: str, leg: str, n: int, publisher: bool,
            status: str) -> bytes:  # fmt: skip
        return orjson.dumps({
            **template,
            "sessionId": session,
            "mediaSessionId": leg,
            "name": f"s{n}",
            "published": publisher,
            "status": status,
            "mediaType": "publish" if publisher else "play",
            "createDate": START_US // 1000,
        })  # fmt: skip


def session_hooks(n: int, keepalives: int, bodies: Bodies) -> Iterator[tuple[str, bytes, int]]:
    """(hook, body, seconds) of one session's life."""
    session = str(uuid.UUID(int=n))
    yield "connect", bodies.session(bodies.connect, session), 0
    established = bodies.session(bodies.connection, session, status="ESTABLISHED")
    yield "ConnectionStatusEvent", established, 1
    for leg, publisher in ((f"{n}-pub", True), (f"{n}-play-1", False), (f"{n}-play-2", False)):
        active = "PUBLISHING" if publisher else "PLAYING"
        yield "StreamStatusEvent", bodies.leg(bodies.stream, session, leg, n, publisher, active), 2
        keepalive = bodies.leg(bodies.keepalive, session, leg, n, publisher, active)
        for k in range(keepalives):
            yield "StreamKeepAliveEvent", keepalive, 10 * (k + 1)
        end = "UNPUBLISHED" if publisher else "STOPPED"
        ended = bodies.leg(bodies.stream, session, leg, n, publisher, end)
        yield "StreamStatusEvent", ended, 10 * keepalives + 5
    disconnected = bodies.session(bodies.connection, session, status="DISCONNECTED")
    yield "ConnectionStatusEvent", disconnected, 10 * keepalives + 6


def envelopes(sessions: int, keepalives: int) -> list[Envelope]:
    """Every session's hooks as the receiver records them (secrets redacted), interleaved in
    time order like a live server sends them."""
    bodies, redactor = Bodies(), Redactor(DEFAULT_SECRET_FIELDS)
    timeline = [
        (seconds * 1_000_000 + n, hook, body)
        for n in range(sessions)
        for hook, body, seconds in session_hooks(n, keepalives, bodies)
    ]
    timeline.sort(key=lambda item: item[0])
    recorded = []
    for at, hook, body in timeline:
        parsed = orjson.loads(body)
        value, redacted = redactor.redact(body, parsed)
        recorded.append(
            Envelope(
                event_id=uuid7(START_US + at),
                hook=hook,
                received_at_us=START_US + at,
                remote_addr="203.0.113.10",
                node_id=parsed["nodeId"],
                session_id=parsed["sessionId"],
                value=value,
                redacted=redacted,
            )
        )
    return recorded


async def produce(settings: Settings, batch: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i, envelope in enumerate(batch, start=1):
            await producer.send(
                settings.topic, envelope.value, key=envelope.key, headers=envelope.headers()
            )
            if i % 20_000 == 0:
                progress(f"\rproduce  {i}/{len(batch)}", end="")
        await producer.flush()
    finally:
        await producer.stop()
    progress("")


@dataclass(slots=True)
class Timing:
    first_batch: float = 0.0
    first_batch_records: int = 0
    last_batch: float = 0.0
    machine_cpu_s: float = 0.0
    steal_s: float = 0.0
    cpu_by_role: dict[str, float] = field(default_factory=dict)


def consumed(conn: psycopg.Connection[Any], group: str) -> int:
    """Records the projection ``group`` has applied (its next offsets: the topic is fresh)."""
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM projection_positions WHERE projection = %s",
        (group,),
    ).fetchone()
    return int(row[0]) if row else 0


PARTITIONS = 6


def assignments(log: Path) -> list[str]:
    """The partitions a projector process was last assigned, from its log (JSON lines)."""
    latest: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if '"projections.partitions.assigned"' in line:
            latest = json.loads(line).get("partitions", [])
    return latest


def all_joined(logs: list[Path]) -> bool:
    """True once every projector holds partitions and together they hold all of them (the
    first one to join holds every partition until the others arrive)."""
    held = [assignments(log) for log in logs]
    return all(held) and sum(map(len, held)) == PARTITIONS


def run_projectors(
    settings: Settings, env: dict[str, str], count: int, total: int, work: Path
) -> Timing:
    """Runs ``count`` projector processes (one consumer group) until ``total`` records are
    applied; times them from the first batch committed once all of them have joined."""
    timing = Timing()
    argv = [sys.executable, "-m", "wcs_audit.cli", "projector"]
    logs = [work / f"projector-{n}.log" for n in range(count)]
    running = []
    for log in logs:
        with log.open("wb") as out:
            running.append(subprocess.Popen(argv, env=env | {"WCS_AUDIT_LOG_LEVEL": "INFO"},
                                            stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
    try:
        with psycopg.connect(libpq_conninfo(settings.database_url, None), autocommit=True) as conn:
            deadline, shown, joined = time.monotonic() + 1800, -1, count == 1
            while (applied := consumed(conn, settings.projector_group)) < total:
                joined = joined or all_joined(logs)
                if joined and applied and not timing.first_batch:  # the steady state
                    before, machine_before = snapshot(), machine_busy_s()
                    steal_before = machine_steal_s()
                    timing.first_batch, timing.first_batch_records = time.perf_counter(), applied
                if any(p.poll() is not None for p in running) or time.monotonic() > deadline:
                    raise RuntimeError(f"projector stopped or stalled at {applied}/{total}")
                if applied != shown:
                    progress(f"\rproject  {applied}/{total}", end="")
                    shown = applied
                time.sleep(POLL_S)
            timing.last_batch = time.perf_counter()
        if not timing.first_batch:
            raise RuntimeError("all was applied before the projectors settled: more --sessions")
        timing.machine_cpu_s = machine_busy_s() - machine_before
        timing.steal_s = machine_steal_s() - steal_before
        timing.cpu_by_role = busy_seconds_by_role(before, snapshot())
        progress(f"\rproject  {total}/{total}")
    finally:
        for projector in running:
            projector.terminate()
        for projector in running:
            projector.wait(timeout=60)
    return timing


def copy_events(conn: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    """COPYs ``hook_events`` rows into ``table``, as the projector does."""
    columns = [hook_events.c[name] for name in EVENT_COLUMNS]
    names = ", ".join(EVENT_COLUMNS)
    with conn.cursor() as cur:
        cur.adapters.register_dumper(None, JsonbDumper)
        with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([copy_type(c) for c in columns])
            for row in rows:
                copy.write_row(row)


def add_history(
    conn: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]], history: int
) -> None:
    """Fills ``table`` with about ``history`` older hooks: copies of ``rows`` with new ids,
    each copy one more day back (so no retry window or silence reaches them), then vacuums,
    analyzes and checkpoints, as a table that has been projecting for a while."""
    if history <= 0:
        return
    conn.execute("CREATE TEMP TABLE history_template (LIKE hook_events)")
    copy_events(conn, "history_template", rows)
    names = ", ".join(EVENT_COLUMNS)
    older = {"event_id": "gen_random_uuid()", "received_at": "received_at - d * interval '1 day'"}
    shifted = ", ".join(older.get(n, n) for n in EVENT_COLUMNS)
    days = max(1, round(history / len(rows)))
    conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {shifted} "
        f"FROM history_template, generate_series(1, {days}) AS d"
    )
    conn.execute("DROP TABLE history_template")
    conn.commit()
    # as a table in service would be: vacuumed, so autovacuum does not start on the fill
    # during the measurement; and checkpointed, else the checkpoint that the fill's gigabytes
    # of WAL force would start there, with the full-page images that follow it
    conn.autocommit = True
    conn.execute(f"VACUUM (ANALYZE) {table}")
    conn.execute("CHECKPOINT")
    conn.autocommit = False


def copy_ceiling(settings: Settings, rows: list[tuple[Any, ...]], history: int) -> float:
    """Seconds for a raw binary COPY of the same ``hook_events`` rows into an identical table
    (with the same ``history``).

    The rows are built before (once per run): this is PostgreSQL's own speed for these rows
    (same columns, same indexes, the projector's COPY format), the ceiling for any projector.
    """
    with psycopg.connect(libpq_conninfo(settings.database_url, None)) as conn:
        conn.execute("CREATE TABLE copy_ceiling (LIKE hook_events INCLUDING ALL)")
        conn.commit()
        add_history(conn, "copy_ceiling", rows, history)
        started = time.perf_counter()
        copy_events(conn, "copy_ceiling", rows)
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


def one_round(
    base: Settings,
    topic: str,
    batch: list[Envelope],
    projectors: int,
    work: Path,
    history: int,
    rows: list[tuple[Any, ...]],
) -> dict[str, Any]:
    """Projects the topic into a fresh database (``history`` older hooks in ``hook_events``
    first), then measures the COPY ceiling there."""
    suffix = uuid.uuid4().hex[:8]
    url = base.database_url.rsplit("/", 1)[0] + f"/bench_{suffix}"
    settings = base.replace(topic=topic, database_url_env=url, projector_group=f"bench-{suffix}")
    env = dict(os.environ) | {
        "WCS_AUDIT_TOPIC": topic,
        "WCS_AUDIT_DATABASE_URL": url,
        "WCS_AUDIT_PROJECTOR_GROUP": settings.projector_group,
        "WCS_AUDIT_PROJECTOR_METRICS_PORT": "0",
        "WCS_AUDIT_LOG_LEVEL": os.environ.get("WCS_AUDIT_LOG_LEVEL", "WARNING"),
    }
    create_database(url)
    try:
        upgrade(url)
        if history:
            progress(f"history: {history} older hooks …")
            with psycopg.connect(libpq_conninfo(url, None)) as conn:
                add_history(conn, "hook_events", rows, history)
        timing = run_projectors(settings, env, projectors, len(batch), work)
        copy_seconds = copy_ceiling(settings, rows, history)
    finally:
        drop_database(url)
    span = timing.last_batch - timing.first_batch
    measured = len(batch) - timing.first_batch_records
    steady = measured / span
    ceiling = len(batch) / copy_seconds
    return {
        "projector_events_per_s": round(steady),
        "copy_rows_per_s": round(ceiling),
        "share_of_copy": round(steady / ceiling, 3),
        **{
            f"{role}_cpu_us_per_event": round(timing.cpu_by_role.get(role, 0.0) / measured * 1e6, 1)
            for role in ("projector", "postgresql", "kafka")
        },
        "machine_cpu_us_per_event": round(timing.machine_cpu_s / measured * 1e6, 1),
        # the share of the cores' time the host took away: a slow round with steal is the host
        "steal_share": round(timing.steal_s / (span * (os.cpu_count() or 1)), 3),
    }


async def prepare_topic(settings: Settings, batch: list[Envelope]) -> None:
    await create_topics(settings, [settings.topic], PARTITIONS)
    await produce(settings, batch)


def main(
    sessions: int, keepalives: int, rounds: int, projectors: int, history: int = 0
) -> dict[str, Any]:
    speed_ms = python_speed_ms()
    base = Settings.from_env(os.environ)
    topic = f"bench.hooks.{uuid.uuid4().hex[:8]}"
    batch = envelopes(sessions, keepalives)
    keepalive_share = sum(e.hook == "StreamKeepAliveEvent" for e in batch) / len(batch)
    rows = event_rows(decoded(batch), ())  # hook_events rows of the ceiling and the history
    asyncio.run(prepare_topic(base.replace(topic=topic), batch))
    results = []
    try:
        with work_dir("bench-projector-") as work:
            for number in range(1, rounds + 1):
                progress(f"round {number} of {rounds}")
                results.append(one_round(base, topic, batch, projectors, work, history, rows))
                progress(json.dumps(results[-1]))
    finally:
        asyncio.run(delete_topics(base.replace(topic=topic), [topic]))
    medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
    ranges = {
        key: [min(r[key] for r in results), max(r[key] for r in results)] for key in results[0]
    }
    return {
        "events": len(batch),
        "keepalive_share": round(keepalive_share, 3),
        "projectors": projectors,
        "history": history,
        "batch_size": base.projector_batch_size,
        "rounds": results,
        "median": medians,
        "range": ranges,
        "cpus": os.cpu_count(),
        "python_speed_ms": speed_ms,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--keepalives", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--projectors", type=int, default=Settings.from_env(os.environ).projector_processes
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="older hooks in hook_events before each round (a table in service, not fresh)",
    )
    args = parser.parse_args()
    result = main(args.sessions, args.keepalives, args.rounds, args.projectors, args.history)
    print(json.dumps(result))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"projector-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
