"""Receiver benchmark: a realistic hook mix against the real local Kafka, with a bare ASGI echo
server measured in the same run as the ceiling.

    .venv/bin/python -m bench.receiver [--workers 2] [--seconds 15] [--rates 1000,2500,5000]
        [--rounds 3] [--warmup 5] [--kafka-warmup 40] [--oha-threads N]

The broker first gets ``--kafka-warmup`` seconds of wrk through the receiver, and each server
``--warmup`` seconds, none of it measured: the Kafka JVM's JIT compiles the produce path over
its first minute of load (measured here: 59 µs of broker CPU per hook in the first 20 s of
wrk, 20 µs in the next 20 s, and the receiver 8,739 against 12,735 hooks/s). Then,
``--rounds`` times, echo and receiver alternately (so drift of this shared machine hits both
alike), two measurements per server:
- **throughput**: wrk (closed loop, 128 connections) for ``--seconds``: hooks/s answered 200;
- **latency at fixed rates**: oha (open loop with ``--latency-correction``: each request's
  latency runs from the moment it was due, so queueing shows honestly) at each of ``--rates``
  hooks/s (hook names and bodies paired at random, see :func:`oha_targets`): p50/p99/max, the
  share answered 200 (within a 15 s timeout), the sender's own CPU per request
  and the share of the machine's cores busy meanwhile (oha's work and the kernel's included:
  on this VM a loaded machine, not the server, sets the tail). oha replaced vegeta (session
  14): vegeta took 163 µs of CPU per request here, 0.84 of the 2 cores at 5,000/s before any
  server ran, against oha's 57 µs, and the echo's own p99 at 5,000/s was 6-40 ms under vegeta
  against 1.8-3.7 ms under oha.
  Beside the receiver's runs, :mod:`bench.ack_probe` measures Kafka's own acknowledgement
  latency under the same load, on a topic of its own: the broker's part of the answer time
  (20 probes a second, connected before the run starts, so that its own load stays small).
  And the receiver's own view of each run (and of the wrk run), from its ``/metrics`` before
  and after: the share of its requests over 10 ms (first byte to answer), of its produce
  batches over 10 ms (first record to acknowledgement), and hooks per batch
  (:func:`own_view`). And the broker's GC pauses during each (:func:`broker_pauses`): a
  round's tail can be told from a pause.
``--oha-threads`` sets oha's runtime threads (its default: one per physical core).
The report gives each figure's median over the rounds, with its range. The receiver runs with
``acks=all`` and an idempotent producer, as in production, all on one topic. Results go to
stdout and to ``bench/results/receiver-<time>.json``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.cpu import (
    busy_seconds_by_role,
    machine_busy_s,
    machine_steal_s,
    per_hook_us,
    python_speed_ms,
    snapshot,
)
from bench.topics import create_topics, delete_topics
from bench.workdir import work_dir
from wcs_audit.settings import Settings
from wcs_audit.stack import stack_up
from wcs_audit.stack.kafka import KafkaPaths

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "wcs" / "samples"
CPUS = os.cpu_count() or 1
PROBE_INTERVAL_MS = 50  # Kafka's own acknowledgement: 20 probes a second beside the load
SLOW_S = 0.010  # the answer time target at 5,000 hooks/s, and a bound of the receiver's buckets
VIEWED = ("wcs_audit_ingest_request_seconds", "wcs_audit_ingest_produce_seconds")
OHA = ("oha", "1.16.0")  # crates.io; built with --locked: its newest deps need a newer rustc
MIX = {  # hook -> share of the traffic: keep-alives dominate a busy WCS
    "StreamKeepAliveEvent": 0.70,
    "StreamStatusEvent": 0.15,
    "connect": 0.04,
    "ConnectionStatusEvent": 0.04,
    "publishStream": 0.02,
    "playStream": 0.03,
    "CallStatusEvent": 0.02,
}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hook_mix(count: int, sessions: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """``count`` (hook, body) pairs in the MIX proportions, sample bodies with varied ids."""
    rng = random.Random(seed)
    bodies = {hook: (SAMPLES / f"{hook}.json").read_bytes() for hook in MIX}
    hooks = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    mix = []
    for hook in hooks:
        session = f"5b0f3c2a-8d41-4e7a-9c55-{rng.randrange(sessions):012d}".encode()
        body = bodies[hook].replace(b"5b0f3c2a-8d41-4e7a-9c55-2f6e1a7b9d03", session)
        mix.append((hook, body))
    return mix


def wrk_script(mix: list[tuple[str, bytes]], path: Path) -> None:
    """A wrk Lua script cycling through the mix, read from ``<path>.data`` at start-up."""
    data = path.with_suffix(".data")
    data.write_bytes(b"".join(hook.encode() + b"\n" + body + b"\0" for hook, body in mix))
    path.write_text(f"""
local requests = {{}}
local file = assert(io.open("{data}", "rb"))
local all = file:read("*a")
file:close()
for hook, body in all:gmatch("([^\\n%z]+)\\n([^%z]+)%z") do
  requests[#requests + 1] = wrk.format("POST", "/apps/wcs/" .. hook,
    {{["Content-Type"] = "application/json;charset=UTF-8"}}, body)
end
assert(#requests == {len(mix)}, "parsed " .. #requests .. " requests")
local n = 0
request = function()
  n = n % #requests + 1
  return requests[n]
end
done = function(summary, latency, reqs)
  io.write(string.format("non2xx=%d\\n", summary.errors.status))
end
""")


def oha_targets(mix: list[tuple[str, bytes]], base: str, work: Path) -> tuple[Path, Path]:
    """The mix as oha reads it: a file of its URLs (``--urls-from-file``) and one of its
    bodies, one per line (``-Z``; the samples' line breaks dropped: JSON whitespace).

    oha draws a request's URL and its body independently, each uniformly from its file, so
    hook names and bodies both come in the MIX proportions but are paired at random. The
    receiver's work does not depend on the pairing: it parses, keys, redacts and records
    any JSON object the same way whatever the hook's name (only ``connect`` with a configured
    ``restClientConfig`` differs, and the benchmark configures none)."""
    urls, bodies = work / "urls.txt", work / "bodies.txt"
    urls.write_text("".join(f"{base}/apps/wcs/{hook}\n" for hook, _ in mix))
    bodies.write_bytes(b"".join(body.replace(b"\n", b"") + b"\n" for _, body in mix))
    return urls, bodies


def ensure_tools(cache: Path) -> tuple[str, str]:
    """wrk (Debian) and oha (crates.io, built once into the cache)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        progress("installing wrk (apt-get) …")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        wrk = "wrk"
    oha = cache / "bin" / "oha"
    if not oha.exists():
        name, version = OHA
        progress(f"building {name} {version} (cargo install, once, a few minutes) …")
        subprocess.run(
            ["cargo", "install", name, "--version", version, "--locked", "--root", str(cache)],
            check=True,
            capture_output=True,
        )
    return wrk, str(oha)


def run_wrk(wrk: str, script: Path, url: str, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t1", "-c128", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = int(re.search(r"non2xx=(\d+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rate": rate,
        "requests": total,
        "non_2xx": non2xx,
        "ok_rate": rate * (total - non2xx) / max(total, 1),
    }


def run_oha(
    oha: str,
    targets: tuple[Path, Path],
    rate: int,
    seconds: int,
    threads: int | None,
    work: Path,
) -> dict[str, float]:
    """Figures for an open-loop run at ``rate`` hooks/s, with ``machine_busy``: the share of
    all cores busy meanwhile (every process, the kernel's interrupts included), the share the
    host took away (``steal_share``), and ``sender_us_per_request``: oha's own CPU per request
    (user + system, from the kernel's accounting of the finished child), what the load
    generator takes from the server's cores. oha's summary counts the requests it sent and
    their outcomes (errors and timeouts, 15 s, included); the latencies come from its
    per-request records (``--db-url``), those of the requests that got an answer."""
    urls, bodies = targets
    db = work / f"oha-{rate}.db"
    db.unlink(missing_ok=True)
    argv = [
        oha, "-z", f"{seconds}s", "-w", "-q", str(rate), "--latency-correction",
        "-c", str(max(16, rate // 20)), "-t", "15s", "--no-tui", "-m", "POST",
        "-T", "application/json;charset=UTF-8", "-Z", str(bodies),
        "--urls-from-file", str(urls), "--output-format", "json", "--db-url", str(db),
    ]  # fmt: skip
    if threads is not None:  # else oha's own default: a runtime thread per physical core
        argv += ["--worker-threads", str(threads)]
    busy_before, started = machine_busy_s(), time.perf_counter()
    children_before, steal_before = children_cpu_s(), machine_steal_s()
    summary = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    core_s = (time.perf_counter() - started) * CPUS
    busy = (machine_busy_s() - busy_before) / core_s
    steal = (machine_steal_s() - steal_before) / core_s
    sender_s = children_cpu_s() - children_before
    with contextlib.closing(sqlite3.connect(db)) as records:
        durations = [row[0] for row in records.execute("SELECT duration FROM oha ORDER BY 1")]
    statuses = summary["statusCodeDistribution"]
    sent = sum(statuses.values()) + sum(summary["errorDistribution"].values())
    return {
        "rate": summary["summary"]["requestsPerSec"],
        "requests": sent,
        "answered_200": statuses.get("200", 0),
        "errors": summary["errorDistribution"],
        "success": statuses.get("200", 0) / max(sent, 1),
        "p50_ms": quantile(durations, 0.50) * 1e3,
        "p99_ms": quantile(durations, 0.99) * 1e3,
        "max_ms": durations[-1] * 1e3,
        "machine_busy": round(busy, 3),
        "steal_share": round(steal, 3),
        "sender_us_per_request": round(sender_s / max(sent, 1) * 1e6, 1),
    }


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of ``ordered`` (ascending), nearest rank."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(1)  # all workers up
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


async def records_in(settings: Settings, topic: str) -> int:
    """How many records ``topic`` holds (sum of its partitions' end offsets)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def measure(
    name: str,
    argv: list[str],
    env: dict[str, str],
    port: int,
    args: argparse.Namespace,
    tools: tuple[str, str],
    work: Path,
    gc_log: Path,
) -> dict[str, dict[str, float]]:
    """One round against one server: warm-up, wrk throughput, then oha at each rate (with,
    for the receiver, the broker's pauses meanwhile, from its GC log ``gc_log``)."""
    url = f"http://127.0.0.1:{port}"
    mix = hook_mix(20_000, sessions=2_000)
    wrk_script(mix, work / "mix.lua")
    targets = oha_targets(mix, url, work)
    with server(argv, env, url, work / f"{name}.log"):
        progress(f"{name}: warm-up, {args.warmup}s (not measured) …")
        results = {"warmup": run_wrk(tools[0], work / "mix.lua", url, args.warmup)}
        progress(f"{name}: wrk, {args.seconds}s closed loop …")
        viewed = receiver_view(url) if name == "receiver" else None
        before = snapshot()
        throughput = run_wrk(tools[0], work / "mix.lua", url, args.seconds)
        used = busy_seconds_by_role(before, snapshot())
        if viewed is not None:
            results["own_view_throughput"] = own_view(viewed, receiver_view(url))
        progress(f"{name}: {throughput['ok_rate']:.0f} hooks/s")
        results["throughput"] = throughput
        results["cpu_throughput"] = per_hook_us(used, round(throughput["requests"]))
        for rate in args.rates:
            progress(f"{name}: oha {rate}/s open loop …")
            probe = start_ack_probe(env, args.seconds) if name == "receiver" else None
            viewed = receiver_view(url) if name == "receiver" else None
            before = snapshot()
            if probe is not None:
                go(probe)
            since = time.time()
            latency = run_oha(tools[1], targets, rate, args.seconds, args.oha_threads, work)
            used = busy_seconds_by_role(before, snapshot())
            if name == "receiver":
                results[f"broker_pauses_at_{rate}"] = broker_pauses(gc_log, since, time.time())
            if viewed is not None:
                results[f"own_view_at_{rate}"] = own_view(viewed, receiver_view(url))
            progress(f"{name}: p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms")
            results[f"at_{rate}"] = latency
            results[f"cpu_at_{rate}"] = per_hook_us(used, round(latency["requests"]))
            if probe is not None:
                results[f"kafka_ack_at_{rate}"] = json.loads(probe.communicate(timeout=60)[0])
    return results


GC_PAUSE = re.compile(r"^\[([0-9T:.+-]+)\]\[gc[a-z,]*\s*\] GC\(\d+\) Pause .* ([0-9.]+)ms$")


def broker_pauses(gc_log: Path, since: float, until: float) -> dict[str, float]:
    """The broker's stop-the-world GC pauses that ended between ``since`` and ``until`` (Unix
    times), from its GC log and the log's rotated files: how many, their sum and the longest.
    Every produce request in flight waits a pause out, and the requests behind it queue."""
    pauses = []
    for file in gc_log.parent.glob(gc_log.name + "*"):
        for line in file.read_text(errors="replace").splitlines():
            match = GC_PAUSE.match(line)
            if match is None:
                continue
            ended = datetime.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            if since <= ended <= until:
                pauses.append(float(match[2]))
    return {
        "count": len(pauses),
        "total_ms": round(sum(pauses), 2),
        "longest_ms": max(pauses, default=0.0),
    }


def receiver_view(url: str) -> dict[str, dict[float, float]]:
    """The receiver's own latency histograms from its ``/metrics`` (all workers): per
    histogram in :data:`VIEWED`, the cumulative count of each bucket by its upper bound."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        family.name: {
            float(sample.labels["le"]): sample.value
            for sample in family.samples
            if sample.name.endswith("_bucket")
        }
        for family in text_string_to_metric_families(text)
        if family.name in VIEWED
    }


def own_view(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, float]:
    """What the receiver itself saw between two :func:`receiver_view` readings: requests
    (first byte to answer) and produce batches (first record to Kafka's acknowledgement),
    the share of each over :data:`SLOW_S`, and hooks per batch. Beside oha's figures it
    tells the receiver's part of the tail from the load generator's."""

    def counted(name: str) -> tuple[float, float]:
        """How many ``name`` observed in between, and the share of them over SLOW_S."""
        total = after[name][math.inf] - before[name][math.inf]
        fast = after[name][SLOW_S] - before[name][SLOW_S]
        return total, round(1 - fast / max(total, 1), 4)

    requests, requests_over = counted("wcs_audit_ingest_request_seconds")
    batches, batches_over = counted("wcs_audit_ingest_produce_seconds")
    return {
        "requests": requests,
        "requests_over_10ms": requests_over,
        "batches": batches,
        "batches_over_10ms": batches_over,
        "hooks_per_batch": round(requests / max(batches, 1), 2),
    }


def own_rows(receivers: list[Round], phase: str) -> list[str]:
    """The report's lines of the receiver's own view (:func:`own_view`) during ``phase``."""
    lines = []
    for figure, label, digits in (
        ("requests_over_10ms", "  own: requests >10ms", 4),
        ("batches_over_10ms", "  own: batches >10ms", 4),
        ("hooks_per_batch", "  own: hooks/batch", 2),
    ):
        seen = spread([r[f"own_view_{phase}"][figure] for r in receivers], digits)
        lines.append(f"{label:22}{'':>24}{seen:>24}")
    return lines


def start_ack_probe(env: dict[str, str], seconds: int) -> subprocess.Popen[bytes]:
    """:mod:`bench.ack_probe` on the probe topic for ``seconds``, connected and waiting for
    :func:`go`. One probe every ``PROBE_INTERVAL_MS``: at 10 ms it took 0.12 of a core (6 % of
    the machine) from the receiver's runs, where the echo's runs carry no probe."""
    topic = env["WCS_AUDIT_TOPIC"] + ".probe"
    argv = [
        sys.executable, "-m", "bench.ack_probe", "--topic", topic, "--seconds", str(seconds),
        "--interval-ms", str(PROBE_INTERVAL_MS), "--wait-for-go",
    ]  # fmt: skip
    probe = subprocess.Popen(
        argv,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert probe.stdout is not None
    if probe.stdout.readline() != b"ready\n":
        raise RuntimeError("bench.ack_probe did not get ready")
    return probe


def go(probe: subprocess.Popen[bytes]) -> None:
    """Starts a probe that :func:`start_ack_probe` left waiting."""
    assert probe.stdin is not None
    probe.stdin.write(b"go\n")
    probe.stdin.flush()


def warm_broker(
    receiver_argv: list[str], env: dict[str, str], seconds: int, wrk: str, work: Path
) -> None:
    """``seconds`` of wrk through the receiver, not measured: the broker's JIT warm-up."""
    url = "http://127.0.0.1:9391"
    wrk_script(hook_mix(20_000, sessions=2_000), work / "mix.lua")
    with server(receiver_argv, env, url, work / "receiver.log"):
        progress(f"Kafka warm-up through the receiver, {seconds}s (not measured) …")
        run_wrk(wrk, work / "mix.lua", url, seconds)


Round = dict[str, dict[str, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--rates", type=lambda text: [int(r) for r in text.split(",")], default=[1000, 2500, 5000]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--kafka-warmup", type=int, default=40)
    parser.add_argument("--oha-threads", type=int, default=None)
    args = parser.parse_args()

    speed_ms = python_speed_ms()
    settings = Settings.from_env(os.environ)
    progress("local stack …")
    stack_up(settings)
    tools = ensure_tools(settings.cache_dir)
    gc_log = KafkaPaths.of(settings).gc_log
    with work_dir("bench-receiver-") as work:
        topic = f"bench.hooks.{int(time.time())}"
        env = {
            **os.environ,
            "WCS_AUDIT_TOPIC": topic,
            "WCS_AUDIT_REJECTED_TOPIC": topic + ".rejected",
            "WCS_AUDIT_SPOOL_DIR": str(work / "spool"),
            "WCS_AUDIT_LOG_LEVEL": "WARNING",
            "WCS_AUDIT_RECEIVER_WORKERS": str(args.workers),
            "WCS_AUDIT_HTTP_PORT": "9391",
        }
        echo_argv = [
            sys.executable, "-m", "uvicorn", "bench.echo_app:app", "--port", "9390",
            "--workers", str(args.workers), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        echo_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        receiver_argv = [sys.executable, "-m", "wcs_audit.cli", "receiver"]
        asyncio.run(create_topics(settings, [topic + ".probe"]))
        # on a topic of its own: the bench topic holds measured hooks only
        if args.kafka_warmup > 0:
            warmup_env = {**env, "WCS_AUDIT_TOPIC": topic + ".warmup"}
            warm_broker(receiver_argv, warmup_env, args.kafka_warmup, tools[0], work)
        echoes: list[Round] = []
        receivers: list[Round] = []
        for number in range(1, args.rounds + 1):
            progress(f"round {number} of {args.rounds}")
            echoes.append(measure("echo", echo_argv, echo_env, 9390, args, tools, work, gc_log))
            receivers.append(
                measure("receiver", receiver_argv, env, 9391, args, tools, work, gc_log)
            )
        kept = asyncio.run(records_in(settings, topic))
        # each run's topics: hundreds of partitions left behind slow the broker down
        scratch = [topic, topic + ".rejected", topic + ".probe", topic + ".warmup"]
        asyncio.run(delete_topics(settings, scratch))
        report(args, echoes, receivers, kept, speed_ms)


def answered_200(rounds: list[Round], rates: list[int]) -> int:
    """Requests of every wrk and oha run of ``rounds`` answered 200."""
    wrk = sum(
        r[run]["requests"] - r[run]["non_2xx"] for r in rounds for run in ("warmup", "throughput")
    )
    return round(wrk + sum(r[f"at_{rate}"]["answered_200"] for r in rounds for rate in rates))


def spread(values: list[float], digits: int) -> str:
    """The median of ``values``, and their range when there are several."""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(
    args: argparse.Namespace,
    echoes: list[Round],
    receivers: list[Round],
    kept: int,
    speed_ms: float,
) -> None:
    ratios = [
        r["throughput"]["ok_rate"] / e["throughput"]["ok_rate"]
        for e, r in zip(echoes, receivers, strict=True)
    ]
    answered = answered_200(receivers, args.rates)
    out = ROOT / "bench" / "results" / f"receiver-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    results = {
        "args": vars(args),
        "echo": echoes,
        "receiver": receivers,
        "receiver_over_echo": ratios,
        "records_in_kafka": kept,
        "answered_200": answered,
        "python_speed_ms": speed_ms,
    }
    out.write_text(json.dumps(results, indent=2))

    def row(label: str, key: tuple[str, str], digits: int) -> str:
        phase, figure = key
        e = spread([r[phase][figure] for r in echoes], digits)
        v = spread([r[phase][figure] for r in receivers], digits)
        return f"{label:22}{e:>24}{v:>24}"

    lines = [
        f"receiver benchmark ({args.workers} worker(s), acks=all, idempotent, "
        f"{args.seconds}s per run, median (range) of {args.rounds} round(s))",
        f"{'':22}{'echo (ceiling)':>24}{'receiver':>24}",
        row("throughput hooks/s", ("throughput", "ok_rate"), 0),
        f"{'receiver / echo':22}{'':>24}{spread(ratios, 2):>24}",
        *own_rows(receivers, "throughput"),
    ]
    for rate in args.rates:
        for figure, unit, digits in (
            ("p50_ms", "p50 ms", 2),
            ("p99_ms", "p99 ms", 2),
            ("max_ms", "max ms", 1),
            ("success", "answered", 3),
            ("machine_busy", "machine busy", 2),
            ("steal_share", "steal by host", 3),
            ("sender_us_per_request", "oha CPU us/req", 0),
        ):
            lines.append(row(f"at {rate}/s {unit}", (f"at_{rate}", figure), digits))
        for figure in ("p50_ms", "p99_ms"):
            acks = spread([r[f"kafka_ack_at_{rate}"][figure] for r in receivers], 2)
            lines.append(f"{f'  Kafka ack {figure[:3]} ms':22}{'':>24}{acks:>24}")
        for figure, label, digits in (
            ("count", "  broker GC pauses", 0),
            ("longest_ms", "  longest pause ms", 1),
        ):
            paused = spread([r[f"broker_pauses_at_{rate}"][figure] for r in receivers], digits)
            lines.append(f"{label:22}{'':>24}{paused:>24}")
        lines += own_rows(receivers, f"at_{rate}")
    for phase in ("throughput", *(f"at_{rate}" for rate in args.rates)):
        roles = receivers[0][f"cpu_{phase}"]
        costs = ", ".join(
            f"{role} {statistics.median(r[f'cpu_{phase}'].get(role, 0.0) for r in receivers):.0f}"
            for role in roles
        )
        lines.append(f"receiver CPU us/hook (median), {phase}: {costs}")
    lines += [
        f"records in Kafka: {kept} (answered 200: {answered})",
        f"machine: {speed_ms} ms for bench.cpu.python_speed_ms (lower is faster)",
        f"results: {out}",
    ]
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
