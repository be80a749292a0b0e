"""Ground truth: what really happened in a simulated day, its aggregates, and its file.

Times are simulated seconds after the day's start (``RunInfo.sim_start``). The file is JSON
lines: one ``run`` line, one line per session, leg and call, then the aggregates, each with a
``kind``: ``viewers`` (peak concurrent and total players per stream name) and ``usage``
(minutes published and played per app, really and as the audit can observe them). Aggregates
are derived from the legs, so reading the file recomputes rather than trusts them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson


@dataclass(slots=True)
class SessionTruth:
    node_id: str
    session_id: str
    app: str
    connected: float | None
    ended: float
    status: str = "DISCONNECTED"
    streams: int = 0
    calls: int = 0
    bug_reports: list[str] = field(default_factory=list)
    bug_reports_at: list[float] = field(default_factory=list)
    """The moments of the ``submitBugReport`` hooks, in the order of ``bug_reports``."""
    data: dict[str, str] = field(default_factory=dict)
    log_pushes: int = 0
    debug_events: int = 0
    repeated_rows: list[tuple[str, float, bool, bool]] = field(default_factory=list)
    """The duplicated hooks of this session that add a row each (``submitBugReport``,
    ``pushLogs``, ``sessionDebug``, ``SessionDebugStatusEvent``): the table, the copy's
    moment, and whether the projector surely and possibly marks the copy as a retry. A copy
    that arrived outside the retry window is rightly a row of its own."""

    def extra_rows(self, table: str) -> tuple[int, int]:
        """How many rows of ``table`` beyond the nominal ones the duplicated hooks must, and
        may, add (copies surely, and possibly, outside the retry window)."""
        marks = [
            (surely, possibly) for name, _, surely, possibly in self.repeated_rows if name == table
        ]
        return sum(not possibly for _, possibly in marks), sum(not surely for surely, _ in marks)


@dataclass(slots=True)
class LegTruth:
    media_session_id: str
    node_id: str
    session_id: str
    app: str
    name: str
    role: str
    created_ms: int
    requested: float
    started: float | None = None
    ended: float = 0.0
    end_status: str = ""
    end_info: str | None = None
    snapshots: int = 0
    lost_terminal: bool = False
    last_delivered: float = 0.0
    media_provider: str = ""
    keepalives: int = 0
    """``StreamKeepAliveEvent`` hooks delivered, retries aside (late ones after the end too)."""
    keepalives_low: int | None = None
    keepalives_high: int | None = None
    """The least and most ``keepalive_count`` the projector may show when receipts strayed
    under load: a duplicate stamped outside the retry window counts, a keep-alive stamped
    within it of the previous one does not (None: exactly ``keepalives``)."""
    last_keepalive: float | None = None
    """Arrival moment of the latest delivered keep-alive."""


@dataclass(slots=True)
class CallTruth:
    call_id: str
    node_id: str
    session_id: str
    app: str
    direction: str
    caller: str
    callee: str
    created: float
    established: float | None = None
    ended: float = 0.0
    status: str = ""
    info: str | None = None
    hold_count: int = 0
    held_s: float = 0.0
    transfer_status: str | None = None
    dtmf: str | None = None
    # digits sent twice by a duplicated sendDtmf that the projector must and may count twice
    # (its copy arrived surely, or possibly, outside the retry window); None: not recorded
    dtmf_repeats_low: int | None = None
    dtmf_repeats_high: int | None = None


@dataclass(slots=True)
class RunInfo:
    """How simulated time maps to the receiver's clock, and how far arrivals may stray.

    A hook of simulated moment ``t`` was scheduled for wall time ``wall_start + t / speed``;
    it was stamped by the receiver at most ``max_delay_s`` wall seconds later, and quirks may
    have moved it by up to ``slack_s`` simulated seconds.
    """

    seed: int
    speed: float
    sim_start: float
    wall_start: float = 0.0
    duration_s: float = 0.0
    keepalive_s: float = 10.0
    slack_s: float = 0.0
    max_delay_s: float = 0.0
    hooks: int = 0
    duplicates: int = 0
    lost_terminals: int = 0
    non_200: int = 0
    undelivered_sessions: list[str] = field(default_factory=list)
    """Sessions with a hook the receiver did not accept: check leaves them out."""
    retries_low: int | None = None
    retries_high: int | None = None
    """How many hooks the projector must and may mark as retries: a hook is one when its
    receipt is within the retry window of an earlier copy's, and under load receipts stray
    (None: exactly the duplicates)."""

    @property
    def tolerance_s(self) -> float:
        """How much later than its moment a hook may be stamped, in simulated seconds."""
        return self.slack_s + self.max_delay_s * self.speed + 0.01


@dataclass(slots=True)
class Truth:
    run: RunInfo
    sessions: list[SessionTruth] = field(default_factory=list)
    legs: list[LegTruth] = field(default_factory=list)
    calls: list[CallTruth] = field(default_factory=list)


KINDS: dict[str, type[Any]] = {
    "session": SessionTruth,
    "leg": LegTruth,
    "call": CallTruth,
}


def write_truth(truth: Truth, path: Path) -> None:
    """Writes ``truth`` as JSON lines to ``path`` (replacing it)."""
    with path.open("wb") as out:
        out.write(orjson.dumps({"kind": "run", **asdict(truth.run)}) + b"\n")
        for kind, rows in (("session", truth.sessions), ("leg", truth.legs), ("call", truth.calls)):
            for row in rows:
                out.write(orjson.dumps({"kind": kind, **asdict(row)}) + b"\n")
        for aggregate in aggregates(truth):
            out.write(orjson.dumps(aggregate) + b"\n")


def read_truth(path: Path) -> Truth:
    """Reads a file written by :func:`write_truth`; raises ValueError on a malformed line."""
    run: RunInfo | None = None
    parts: dict[str, list[Any]] = defaultdict(list)
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        record = orjson.loads(line)
        kind = record.pop("kind", None)
        if kind == "run":
            run = RunInfo(**_known(RunInfo, record))
        elif kind in KINDS:
            parts[kind].append(KINDS[kind](**_known(KINDS[kind], record)))
        elif kind not in {"viewers", "usage"}:
            raise ValueError(f"unknown truth record kind {kind!r}")
    if run is None:
        raise ValueError(f"{path}: no run record")
    return Truth(run, parts["session"], parts["leg"], parts["call"])


def _known(cls: type[Any], record: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in record.items() if k in names}


# -- aggregates -----------------------------------------------------------------------------


def observed_end(leg: LegTruth) -> float:
    """When the audit can see the leg end: its terminal event, else its last delivered hook."""
    return leg.last_delivered if leg.lost_terminal else leg.ended


def peak_overlap(intervals: Iterable[tuple[float, float]], closed: bool) -> int:
    """Most intervals covering one moment. ``closed``: an end and a start at the same moment
    overlap; otherwise the end comes first (as in the ``stream_viewers`` view)."""
    changes = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda change: (change[0], -change[1] if closed else change[1]),
    )
    running = peak = 0
    for _, delta in changes:
        running += delta
        peak = max(peak, running)
    return peak


@dataclass(frozen=True, slots=True)
class Viewers:
    """Peak concurrent players of one stream name: exact, and the range the projection may
    show when every arrival may be up to ``tolerance`` late."""

    name: str
    peak: int
    low: int
    high: int
    total: int


def stream_viewers(legs: Sequence[LegTruth], tolerance: float) -> dict[str, Viewers]:
    """Peak viewers per stream name, over player legs that started."""
    by_name: dict[str, list[LegTruth]] = defaultdict(list)
    for leg in legs:
        if leg.role == "player" and leg.started is not None:
            by_name[leg.name].append(leg)
    result = {}
    for name, players in by_name.items():
        exact = [(p.started or 0.0, p.ended) for p in players]
        shrunk = [(p.started or 0.0, observed_end(p)) for p in players]
        low = [(s + tolerance, e) for s, e in shrunk if e > s + tolerance]
        high = [(s, e + tolerance) for s, e in exact]
        result[name] = Viewers(
            name,
            peak_overlap(exact, closed=False),
            peak_overlap(low, closed=False),
            peak_overlap(high, closed=True),
            len(players),
        )
    return result


@dataclass(frozen=True, slots=True)
class Usage:
    """Minutes published and played in one app, as the audit can observe them."""

    app: str
    published_minutes: float
    played_minutes: float
    legs: int


def usage_minutes(legs: Sequence[LegTruth]) -> dict[str, Usage]:
    """Minutes per app of started legs, from their start to their observable end."""
    minutes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.started is not None:
            minutes[leg.app][leg.role] += (observed_end(leg) - leg.started) / 60
            counts[leg.app] += 1
    return {
        app: Usage(app, roles["publisher"], roles["player"], counts[app])
        for app, roles in minutes.items()
    }


def aggregates(truth: Truth) -> Iterator[dict[str, Any]]:
    """The ``viewers`` and ``usage`` records of the truth file."""
    for viewers in stream_viewers(truth.legs, 0.0).values():
        yield {"kind": "viewers", "name": viewers.name, "peak": viewers.peak,
               "total": viewers.total}  # fmt: skip
    real = usage_minutes([replace(leg, lost_terminal=False) for leg in truth.legs])
    for app, usage in usage_minutes(truth.legs).items():
        yield {
            "kind": "usage",
            "app": app,
            "published_minutes": round(real[app].published_minutes, 3),
            "played_minutes": round(real[app].played_minutes, 3),
            "observable_published_minutes": round(usage.published_minutes, 3),
            "observable_played_minutes": round(usage.played_minutes, 3),
        }


def call_outcome(call: CallTruth) -> str:
    """The ``call_outcomes`` view's classification of one call."""
    if call.established is not None:
        return "answered"
    return {"BUSY": "busy", "FAILED": "failed"}.get(call.status, "not answered")


def count_by(items: Iterable[Any]) -> dict[Any, int]:
    """How often each item occurs."""
    counts: dict[Any, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return dict(counts)


def iter_rows(truth: Truth) -> Iterator[Any]:
    """Every session, leg and call of ``truth``."""
    yield from truth.sessions
    yield from truth.legs
    yield from truth.calls
