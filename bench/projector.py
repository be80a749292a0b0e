"""Benchmark (not a test): events/s from Kafka into PostgreSQL for a keep-alive-heavy mix.

    .venv/bin/python -m bench.projector [--sessions 2000] [--keepalives 20] [--rounds 3]
                                        [--projectors 1] [--history 0]

Produces, once, to a fresh topic the story of ``--sessions`` WCS sessions as the receiver
writes it (each: connect, ESTABLISHED, one publisher and two players with ``--keepalives``
keep-alives per leg, then the ends and DISCONNECTED: about 85% keep-alives; bodies are the
reference samples with the session's ids, secrets redacted as the receiver redacts them).
Then, ``--rounds`` times, into a fresh database (with ``--history N``, ``hook_log`` first
gets about N older hooks, copies of the story a day further back each, with bodies of their
own in ``hook_payloads``: a table in service, whose size the planner's costs follow, rather
than an empty one):

- **projector**: ``--projectors`` real projector processes (``wcs-audit projector``, one
  consumer group; by default as many as ``wcs-audit run`` starts) consume the whole topic; the
  rate and the CPU are taken from the first batch committed once all have joined the group
  (read from their logs) to the last (positions polled every 20 ms), so process start and the
  group join are left out;
- **ceiling** (#4's): a raw binary ``COPY`` of the rows of ``hook_events`` for these hooks,
  one per hook with its body as ``jsonb``, the audit log's rows as #4 defines them, into a
  table of their shape (``hook_log``'s indexes, same history): PostgreSQL's own speed for these
  rows, and the ceiling of the benchmark in every session;
- **stored-rows ceiling**: a raw binary ``COPY`` of what PostgreSQL holds for them since
  migration 0007, their ``hook_log`` rows and each distinct body once into ``hook_payloads``,
  into identical tables. Storing each body once is itself the projector's work, so this lower
  bar moves with every storage saving; it is reported beside the ceiling, not instead of it.

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
from projections.payloads import PAYLOAD_COLUMNS
from projections.stage import EVENT_COLUMNS, LOG_COLUMNS, JsonbDumper, copy_type, event_rows
from projections.tables import hook_payloads
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


Rows = list[tuple[Any, ...]]
KEY = EVENT_COLUMNS.index("payload_id")
# a hook_events row as the table was until migration 0007: the body in place of its key
ROW_PER_HOOK_COLUMNS = [*LOG_COLUMNS[:KEY], *LOG_COLUMNS[KEY + 1 :], hook_payloads.c.payload]


@dataclass(frozen=True, slots=True)
class StoredRows:
    """What the projector stores for the story's hooks (``hook_log`` rows and payloads), and
    the same hooks as one row each with its body (in :data:`ROW_PER_HOOK_COLUMNS` order)."""

    log: Rows
    payloads: Rows
    per_hook: Rows

    @classmethod
    def of(cls, events: list[Event]) -> StoredRows:
        log = event_rows(events, ())
        per_hook = [
            (*row[:KEY], *row[KEY + 1 :], e.payload) for row, e in zip(log, events, strict=True)
        ]
        payloads = {e.payload_id: e.payload for e in events}
        return cls(log, sorted(payloads.items()), per_hook)


def copy_into(conn: psycopg.Connection[Any], table: str, columns: list[Any], rows: Rows) -> None:
    """COPYs ``rows`` (values in the order of ``columns``) into ``table``, as the projector
    does."""
    names = ", ".join(c.name for c in columns)
    with conn.cursor() as cur:
        cur.adapters.register_dumper(None, JsonbDumper)
        with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([copy_type(c) for c in columns])
            for row in rows:
                copy.write_row(row)


def copy_stored(conn: psycopg.Connection[Any], prefix: str, rows: StoredRows) -> None:
    """COPYs ``rows`` into ``{prefix}hook_log`` and ``{prefix}hook_payloads``."""
    copy_into(conn, f"{prefix}hook_log", LOG_COLUMNS, rows.log)
    copy_into(conn, f"{prefix}hook_payloads", list(PAYLOAD_COLUMNS), rows.payloads)


# the key of a body's copy for day ``d`` back: bodies of their own, as older sessions have
DAY_ID = "substring(sha256(payload_id || int4send(d)) FROM 1 FOR 16)"


def add_history(conn: psycopg.Connection[Any], prefix: str, rows: StoredRows, history: int) -> None:
    """Fills ``{prefix}hook_log`` with about ``history`` older hooks, copies of ``rows`` with
    new ids, each copy one more day back (so no retry window or silence reaches them), and
    ``{prefix}hook_payloads`` with their bodies, under keys of that day (as many distinct
    bodies per hook as the story has); then vacuums, analyzes and checkpoints, as tables that
    have been projecting for a while."""
    if history <= 0:
        return
    conn.execute("CREATE TEMP TABLE history_hook_log (LIKE hook_log)")
    conn.execute("CREATE TEMP TABLE history_hook_payloads (LIKE hook_payloads)")
    copy_stored(conn, "history_", rows)
    names = ", ".join(EVENT_COLUMNS)
    older = {
        "event_id": "gen_random_uuid()",
        "received_at": "received_at - d * interval '1 day'",
        "payload_id": DAY_ID,
    }
    shifted = ", ".join(older.get(n, n) for n in EVENT_COLUMNS)
    days = f"generate_series(1, {max(1, round(history / len(rows.log)))}) AS d"
    conn.execute(
        f"INSERT INTO {prefix}hook_log ({names}) SELECT {shifted} FROM history_hook_log, {days}"
    )
    conn.execute(
        f"INSERT INTO {prefix}hook_payloads SELECT {DAY_ID}, payload "
        f"FROM history_hook_payloads, {days}"
    )
    conn.execute("DROP TABLE history_hook_log, history_hook_payloads")
    conn.commit()
    settle(conn, f"{prefix}hook_log", f"{prefix}hook_payloads")


def settle(conn: psycopg.Connection[Any], *tables: str) -> None:
    """Vacuums and analyzes ``tables`` just filled, then checkpoints, as tables in service
    would be: so autovacuum does not start on the fill during the measurement, and the
    checkpoint that the fill's gigabytes of WAL force does not start there, with the
    full-page images that follow it."""
    conn.autocommit = True
    conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
    conn.execute("CHECKPOINT")
    conn.autocommit = False


def copy_ceilings(settings: Settings, rows: StoredRows, history: int) -> tuple[float, float]:
    """Seconds for a raw binary COPY of ``rows``' hooks as ``hook_events`` rows, one per hook
    with its body (the ceiling), and for one of the rows the projector stores for them into
    identical tables (the stored-rows ceiling), both after the same ``history``.

    The rows are built before (once per run): this is PostgreSQL's own speed for these rows
    (same columns, same indexes, the projector's COPY format).
    """
    with psycopg.connect(libpq_conninfo(settings.database_url, None)) as conn:
        for table in ("hook_log", "hook_payloads"):
            conn.execute(f"CREATE TABLE ceiling_{table} (LIKE {table} INCLUDING ALL)")
        conn.execute("CREATE TABLE ceiling_hook_events (LIKE hook_log INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE ceiling_hook_events DROP COLUMN payload_id, "
            "ADD COLUMN payload jsonb NOT NULL"
        )
        conn.commit()
        add_history(conn, "ceiling_", rows, history)
        if history > 0:
            names = ", ".join(c.name for c in ROW_PER_HOOK_COLUMNS)
            conn.execute(
                f"INSERT INTO ceiling_hook_events ({names}) SELECT {names} "
                "FROM ceiling_hook_log JOIN ceiling_hook_payloads USING (payload_id)"
            )
            conn.commit()
            settle(conn, "ceiling_hook_events")
        started = time.perf_counter()
        copy_stored(conn, "ceiling_", rows)
        conn.commit()
        stored = time.perf_counter() - started
        started = time.perf_counter()
        copy_into(conn, "ceiling_hook_events", ROW_PER_HOOK_COLUMNS, rows.per_hook)
        conn.commit()
        return time.perf_counter() - started, stored


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
    rows: StoredRows,
) -> dict[str, Any]:
    """Projects the topic into a fresh database (``history`` older hooks in ``hook_log``
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
                add_history(conn, "", rows, history)
        timing = run_projectors(settings, env, projectors, len(batch), work)
        ceiling_seconds, stored_seconds = copy_ceilings(settings, rows, history)
    finally:
        drop_database(url)
    span = timing.last_batch - timing.first_batch
    measured = len(batch) - timing.first_batch_records
    steady = measured / span
    ceiling = len(batch) / ceiling_seconds
    stored = len(batch) / stored_seconds
    return {
        "projector_events_per_s": round(steady),
        "copy_rows_per_s": round(ceiling),
        "share_of_copy": round(steady / ceiling, 3),
        "stored_rows_copy_rows_per_s": round(stored),
        "share_of_stored_rows_copy": round(steady / stored, 3),
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
    rows = StoredRows.of(decoded(batch))  # of the ceiling and the history
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
        "distinct_payloads": len(rows.payloads),
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
        help="older hooks in hook_log before each round (a table in service, not fresh)",
    )
    args = parser.parse_args()
    result = main(args.sessions, args.keepalives, args.rounds, args.projectors, args.history)
    print(json.dumps(result))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"projector-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
