"""Open-loop HTTP load: every hook is sent at its scheduled wall-clock moment.

Send times come from the schedule, never from answers: a slow receiver does not slow the
sender down, so latency is measured from the *scheduled* moment (no coordinated omission).
Requests beyond the connection pool wait inside aiohttp's connector; that wait counts as
latency too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from simulator.connections import Pool, Target
from simulator.schedule import Send

HEADERS = {
    "Accept": "application/json, application/*+json",
    "Content-Type": "application/json;charset=UTF-8",
    "User-Agent": "Java/1.8.0_111",
}


@dataclass(slots=True)
class Progress:
    """The state of a run, updated as answers arrive (read by the progress display)."""

    total: int
    started_wall: float
    sent: int = 0
    done: int = 0
    non_200: int = 0
    max_lag_s: float = 0.0


@dataclass(slots=True)
class LoadReport:
    """Outcome of a run: rates, latency percentiles (ms, from the scheduled moment) and
    every answer that was not ``200``."""

    sent: int
    seconds: float
    wall_start: float
    target_rate: float
    achieved_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    max_lag_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    """Indexes (into the sends) of the hooks not answered ``200``."""
    repeat_gaps_s: list[tuple[int, float, float]] = field(default_factory=list)
    """For each hook answered ``200`` whose hook and body were sent before (a duplicate, or
    a leg's next keep-alive): its index, and the least and the most wall time from the
    earlier copy's receipt to its own, as the answers bound them (a receipt lies between a
    hook's scheduled moment and its answer)."""

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")

    @property
    def max_delay_s(self) -> float:
        """Longest time from a hook's scheduled moment to its answer, in wall seconds."""
        return self.max_ms / 1000

    def lines(self) -> list[str]:
        """The report as printable lines."""
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return [
            f"sent      {self.sent} hooks in {self.seconds:.1f} s",
            f"rate      {self.achieved_rate:,.0f}/s achieved, {self.target_rate:,.0f}/s scheduled",
            f"latency   p50 {self.p50_ms:.1f} ms  p90 {self.p90_ms:.1f} ms  "
            f"p99 {self.p99_ms:.1f} ms  max {self.max_ms:.1f} ms (from the scheduled moment)",
            f"lag       sender at most {self.max_lag_ms:.1f} ms behind the schedule",
            f"answers   {statuses or 'none'}",
        ]


def percentile(ordered: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``ordered`` (sorted ascending); 0 when empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def hook_url(base_url: str, hook: str) -> URL:
    """``base_url/<hook>``, parsed once per hook name by the caller."""
    return URL(f"{base_url.rstrip('/')}/{hook}", encoded=True)


def hook_urls(base_url: str, sends: Sequence[Send]) -> dict[str, URL]:
    """``base_url/<hook>`` for each hook name of ``sends``."""
    return {hook: hook_url(base_url, hook) for hook in {s.hook for s in sends}}


Start = Callable[[Send, Callable[[str], None]], None]
"""Starts one request without waiting; calls back once with the status (or error name)."""


async def send_day(
    sends: Sequence[Send],
    base_url: str,
    speed: float,
    *,
    connections: int = 64,
    timeout_s: float = 30.0,
    progress: Callable[[Progress], None] | None = None,
    lead_s: float = 0.5,
    client: str = "lean",
) -> LoadReport:
    """POSTs every send at ``wall_start + send.at / speed`` and waits for all answers.

    ``wall_start`` is ``lead_s`` after the call (Unix seconds, in the report). ``client`` is
    ``lean`` (:mod:`simulator.connections`, plain http only) or ``aiohttp``. Blocks until the
    last answer, or ``timeout_s`` after the last send (the rest count as ``Timeout``);
    network errors count as statuses named after the exception.
    """
    async with open_client(client, base_url, connections, timeout_s) as start:
        return await run_schedule(
            sends, speed, start, timeout_s=timeout_s, progress=progress, lead_s=lead_s
        )


@contextlib.asynccontextmanager
async def open_client(
    client: str, base_url: str, connections: int, timeout_s: float
) -> AsyncIterator[Start]:
    """The ``Start`` function of the chosen client, open for the block."""
    if client == "lean":
        target = Target.of(base_url)
        pool = Pool(target, connections)
        headers = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()).encode()

        def start_lean(send: Send, done: Callable[[str], None]) -> None:
            pool.submit(target.request(send.hook, send.body, headers), done)

        try:
            yield start_lean
        finally:
            pool.close()
        return
    assert client == "aiohttp", f"unknown client {client!r}"
    urls = hook_urls(base_url, ())
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=HEADERS, auto_decompress=False
    ) as http:
        tasks: set[asyncio.Task[None]] = set()

        async def post(send: Send, done: Callable[[str], None]) -> None:
            url = urls.get(send.hook) or urls.setdefault(send.hook, hook_url(base_url, send.hook))
            try:
                async with http.post(url, data=send.body) as answer:
                    await answer.read()
                    status = str(answer.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            done(status)

        def start_aiohttp(send: Send, done: Callable[[str], None]) -> None:
            task = asyncio.get_running_loop().create_task(post(send, done))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        yield start_aiohttp


async def run_schedule(
    sends: Sequence[Send],
    speed: float,
    start: Start,
    *,
    timeout_s: float,
    progress: Callable[[Progress], None] | None,
    lead_s: float,
) -> LoadReport:
    """Dispatches ``sends`` through ``start`` and collects the answers into a report."""
    loop = asyncio.get_running_loop()
    latencies = array("d", bytes(8 * len(sends)))
    statuses: Counter[str] = Counter()
    failed: list[int] = []
    answers = bytearray(len(sends))  # 1 once answered
    state = Progress(len(sends), time.time())
    finished = asyncio.Event()
    if not sends:
        finished.set()

    def answered(index: int, due: float) -> Callable[[str], None]:
        def done(status: str) -> None:
            latencies[index] = loop.time() - due
            statuses[status] += 1
            answers[index] = 1
            state.done += 1
            if status != "200":
                state.non_200 += 1
                failed.append(index)
            if state.done == state.total:
                finished.set()

        return done

    mono_start = loop.time() + lead_s
    wall_start = time.time() + lead_s
    reporter = asyncio.create_task(report_progress(state, progress))
    await dispatch(sends, speed, mono_start, start=start, answered=answered, state=state)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), timeout_s)
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    if state.done < state.total:
        statuses["Timeout"] += state.total - state.done
        failed.extend(i for i, answered in enumerate(answers) if not answered)
    if progress is not None:
        progress(state)
    seconds = loop.time() - mono_start
    return summarize(
        sends, speed, wall_start=wall_start, seconds=seconds, latencies=latencies,
        statuses=statuses, state=state, failed=failed,
    )  # fmt: skip


async def dispatch(
    sends: Sequence[Send],
    speed: float,
    mono_start: float,
    *,
    start: Start,
    answered: Callable[[int, float], Callable[[str], None]],
    state: Progress,
) -> None:
    """Starts each send at its moment, sleeping only when ahead of the schedule."""
    loop = asyncio.get_running_loop()
    for index, send in enumerate(sends):
        due = mono_start + send.at / speed
        ahead = due - loop.time()
        if ahead > 0.001:
            await asyncio.sleep(ahead)
        else:
            state.max_lag_s = max(state.max_lag_s, -ahead)
        start(send, answered(index, due))
        state.sent = index + 1


async def report_progress(state: Progress, show: Callable[[Progress], None] | None) -> None:
    """Calls ``show`` twice a second until cancelled."""
    if show is None:
        return
    while True:
        show(state)
        await asyncio.sleep(0.5)


def summarize(
    sends: Sequence[Send],
    speed: float,
    *,
    wall_start: float,
    seconds: float,
    latencies: array[float],
    statuses: Counter[str],
    state: Progress,
    failed: list[int],
) -> LoadReport:
    """The :class:`LoadReport` of a finished run."""
    ordered = sorted(latencies)
    span_s = (sends[-1].at / speed) if sends else 0.0
    return LoadReport(
        sent=len(sends),
        seconds=seconds,
        wall_start=wall_start,
        target_rate=len(sends) / span_s if span_s else 0.0,
        achieved_rate=len(sends) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(ordered, 0.5) * 1000,
        p90_ms=percentile(ordered, 0.9) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        max_lag_ms=state.max_lag_s * 1000,
        statuses=dict(statuses),
        failed=sorted(failed),
        repeat_gaps_s=repeat_gaps(sends, speed, latencies, set(failed)),
    )


def repeat_gaps(
    sends: Sequence[Send], speed: float, latencies: Sequence[float], failed: set[int]
) -> list[tuple[int, float, float]]:
    """See :attr:`LoadReport.repeat_gaps_s`; the earlier copy is the latest one answered."""
    latest: dict[tuple[str, bytes], int] = {}
    gaps = []
    for index, send in enumerate(sends):
        if index in failed:
            continue
        key = (send.hook, send.body)
        earlier = latest.get(key)
        latest[key] = index
        if earlier is not None:
            apart = (send.at - sends[earlier].at) / speed
            gaps.append((index, apart - latencies[earlier], apart + latencies[index]))
    return gaps


def render_progress(state: Progress, width: int = 30) -> str:
    """One line of progress: a bar, counts, the rate so far, lag and non-200 answers."""
    share = state.done / state.total if state.total else 1.0
    filled = int(share * width)
    elapsed = max(time.time() - state.started_wall, 1e-9)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {share * 100:5.1f}%  "
        f"{state.done}/{state.total} hooks  {state.done / elapsed:,.0f}/s  "
        f"lag {state.max_lag_s * 1000:.0f} ms  non-200 {state.non_200}"
    )
