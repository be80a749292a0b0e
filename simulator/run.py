"""A simulated day end to end: schedule, open-loop load, ground-truth file.

The time model: a hook of simulated moment ``t`` is sent at wall time ``wall_start + t/speed``,
so the receiver's ``received-at`` is the simulated clock scaled by ``1/speed``. The projector
must see WCS's intervals scaled the same way (:func:`projector_settings`), else a 100x day's
keep-alives (0.1 s apart) would look like retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from simulator.load import LoadReport, Progress, send_day
from simulator.scenario import RETRY_WINDOW_S, Scenario
from simulator.schedule import Send, build_day
from simulator.truth import CallTruth, LegTruth, SessionTruth, Truth, write_truth

SILENCE_S = 3600.0
"""The projector's default stream and session silence, in simulated seconds."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished simulation: its load report and its truth (already written)."""

    report: LoadReport
    truth: Truth


def projector_settings(scenario: Scenario) -> dict[str, float]:
    """The projector's timing settings (``Settings`` field names) that make it see this day
    as WCS's real intervals: every interval divided by the speed."""
    speed = scenario.speed
    return {
        "projector_keepalive_interval_s": scenario.keepalive_s / speed,
        "projector_retry_window_s": RETRY_WINDOW_S / speed,
        "projector_stream_silence_s": SILENCE_S / speed,
        "projector_session_silence_s": SILENCE_S / speed,
    }


def projector_env(scenario: Scenario) -> dict[str, str]:
    """:func:`projector_settings` as ``WCS_AUDIT_*`` environment variables."""
    return {
        f"WCS_AUDIT_{name.upper()}": f"{value:g}"
        for name, value in projector_settings(scenario).items()
    }


def within_window(least: float, most: float, window_s: float) -> tuple[bool, bool]:
    """Whether two receipts ``least``..``most`` apart are surely, and possibly, at most
    ``window_s`` apart."""
    return -window_s <= least and most <= window_s, least <= window_s and most >= -window_s


def retry_bounds(gaps_s: Iterable[tuple[int, float, float]], window_s: float) -> tuple[int, int]:
    """How many of the repeated hooks ``gaps_s`` the projector must and may mark as retries."""
    low = high = 0
    for _, least, most in gaps_s:
        surely, possibly = within_window(least, most, window_s)
        low += surely
        high += possibly
    return low, high


def marks_by(
    gaps_s: Iterable[tuple[int, float, float]],
    sends: Sequence[Send],
    window_s: float,
    key: Callable[[Send], str | None],
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """For the repeated hooks of ``gaps_s``, by ``key`` of their send (None: left out): how
    many there are, and how many the projector surely and possibly marks as retries."""
    repeats: Counter[str] = Counter()
    surely_marked: Counter[str] = Counter()
    possibly_marked: Counter[str] = Counter()
    for index, least, most in gaps_s:
        name = key(sends[index])
        if name is not None:
            surely, possibly = within_window(least, most, window_s)
            repeats[name] += 1
            surely_marked[name] += surely
            possibly_marked[name] += possibly
    return repeats, surely_marked, possibly_marked


def keepalive_bounds(
    legs: Iterable[LegTruth],
    sends: Sequence[Send],
    gaps_s: Iterable[tuple[int, float, float]],
    window_s: float,
) -> None:
    """Sets each leg's ``keepalives_low``/``_high``: its keep-alives delivered, duplicates
    included, less those that are surely and possibly marked as retries."""
    leg_of: dict[bytes, str] = {}  # a leg's keep-alive bodies repeat: parse each once

    def leg(send: Send) -> str:
        if send.body not in leg_of:
            leg_of[send.body] = str(orjson.loads(send.body).get("mediaSessionId"))
        return leg_of[send.body]

    extra = Counter(leg(s) for s in sends if s.duplicate and s.hook == "StreamKeepAliveEvent")
    _, surely_marked, possibly_marked = marks_by(
        gaps_s, sends, window_s, lambda s: leg(s) if s.hook == "StreamKeepAliveEvent" else None
    )
    for truth in legs:
        name = truth.media_session_id
        delivered = truth.keepalives + extra[name]
        truth.keepalives_low = delivered - possibly_marked[name]
        truth.keepalives_high = delivered - surely_marked[name]


def dtmf_bounds(
    calls: Iterable[CallTruth],
    sends: Sequence[Send],
    gaps_s: Iterable[tuple[int, float, float]],
    window_s: float,
) -> None:
    """Sets each call's ``dtmf_repeats_low``/``_high``: the duplicated ``sendDtmf`` hooks
    whose copy arrived surely, and possibly, outside the retry window, so that the projector
    rightly counts their digit twice (a WCS retry is only recognised within the window). A
    digit really sent again with the same body within the window is not allowed for: the
    projector takes it for a retry, and the check reports it."""

    def call(send: Send) -> str | None:
        if send.duplicate and send.hook == "sendDtmf":
            return str(orjson.loads(send.body).get("callId"))
        return None

    repeats, surely, possibly = marks_by(gaps_s, sends, window_s, call)
    for truth in calls:
        name = truth.call_id
        truth.dtmf_repeats_low = repeats[name] - possibly[name]
        truth.dtmf_repeats_high = repeats[name] - surely[name]


ROW_PER_HOOK = {  # hooks of which every copy the projector does not take for a retry is a row
    "submitBugReport": "bug_reports",
    "pushLogs": "client_log_pushes",
    "sessionDebug": "session_debug",
    "SessionDebugStatusEvent": "session_debug",
}


def repeated_row_bounds(
    sessions: Iterable[SessionTruth],
    sends: Sequence[Send],
    gaps_s: Iterable[tuple[int, float, float]],
    window_s: float,
) -> None:
    """Records on each session its duplicated hooks of :data:`ROW_PER_HOOK` (see
    :attr:`SessionTruth.repeated_rows`), so that a copy that arrived outside the retry window
    may count as the row the projector rightly makes of it."""
    by_id = {truth.session_id: truth for truth in sessions}
    for index, least, most in gaps_s:
        send = sends[index]
        table = ROW_PER_HOOK.get(send.hook)
        if table is None or not send.duplicate:
            continue
        truth = by_id.get(str(orjson.loads(send.body).get("sessionId")))
        if truth is not None:
            truth.repeated_rows.append((table, send.at, *within_window(least, most, window_s)))


def sessions_of(sends: Iterable[Send]) -> list[str]:
    """The distinct ``sessionId`` values of ``sends``' bodies."""
    return sorted({str(orjson.loads(send.body).get("sessionId")) for send in sends})


async def simulate(
    scenario: Scenario,
    base_url: str,
    truth_path: Path,
    *,
    connections: int = 64,
    timeout_s: float = 30.0,
    progress: Callable[[Progress], None] | None = None,
    client: str = "lean",
) -> Outcome:
    """Builds the day, sends it to ``base_url`` open-loop, and writes the truth file with
    the run's wall-clock start and its longest delivery delay. Blocks until every answer."""
    day = build_day(scenario)
    report = await send_day(
        day.sends,
        base_url,
        scenario.speed,
        connections=connections,
        timeout_s=timeout_s,
        progress=progress,
        client=client,
    )
    record_delivery(day.truth, scenario, day.sends, report)
    write_truth(day.truth, truth_path)
    return Outcome(report, day.truth)


def record_delivery(
    truth: Truth, scenario: Scenario, sends: Sequence[Send], report: LoadReport
) -> None:
    """Completes ``truth`` with how the sends were delivered: the wall-clock start, the
    longest delay, what was refused, how many hooks the projector must and may mark as
    retries, and so each leg's keep-alive count, each call's DTMF digits and each session's
    rows of hooks that add one each."""
    run = truth.run
    run.wall_start, run.max_delay_s, run.non_200 = (
        report.wall_start,
        report.max_delay_s,
        report.non_200,
    )
    run.undelivered_sessions = sessions_of(sends[i] for i in report.failed)
    window_s = projector_settings(scenario)["projector_retry_window_s"]
    run.retries_low, run.retries_high = retry_bounds(report.repeat_gaps_s, window_s)
    keepalive_bounds(truth.legs, sends, report.repeat_gaps_s, window_s)
    dtmf_bounds(truth.calls, sends, report.repeat_gaps_s, window_s)
    repeated_row_bounds(truth.sessions, sends, report.repeat_gaps_s, window_s)
