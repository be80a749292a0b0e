"""The truth's figures for the analytics views, in the views' own terms (pure).

The views count in the receiver's clock: a view's minute, day, duration bucket and SDR start
are receiver times, which are the simulated clock divided by the speed (:class:`Clock`). Each
figure here is computed from what the simulator did (the simulated moments of legs, sessions,
calls and bug reports), mapped to that clock, never from the projected rows. A count is a
:class:`Bounds`: its value had every hook arrived on time, and the range a projection may show
when each projected moment strays within the clock's tolerance (an item near a minute, day,
second or bucket boundary may fall on either side of it).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from simulator.judge import Bounds, Clock
from simulator.truth import CallTruth, LegTruth, SessionTruth, observed_end

ROLES = ("publisher", "player")

DURATION_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1 min", 0, 60),
    ("1-5 min", 60, 300),
    ("5-15 min", 300, 900),
    ("15-60 min", 900, 3600),
    ("1 h+", 3600, None),
)
"""The buckets of docs/analytics.md's duration distributions: ``lower_s <= d < upper_s``."""

INFERRED_INFO = "inferred: no keep-alive for "
"""How the info of a leg whose terminal status was lost begins (the rest is the projector's
keep-alive timeout, a setting of the projector, not of the day)."""


@dataclass(frozen=True, slots=True)
class Moment:
    """A simulated moment in receiver Unix time: had it arrived on time, earliest, latest."""

    on_time: float
    earliest: float
    latest: float

    @classmethod
    def of(cls, clock: Clock, sim: float) -> Moment:
        earliest, latest = clock.wall_range(sim)
        return cls(clock.wall(sim), earliest, latest)


def minute_of(wall: float) -> int:
    """The receiver minute (Unix seconds // 60) holding Unix time ``wall``."""
    return math.floor(wall / 60)


def day_of(wall: float) -> date:
    """The UTC day of Unix time ``wall``."""
    return datetime.fromtimestamp(wall, UTC).date()


# -- concurrent_streams_per_minute ------------------------------------------------------------


@dataclass(slots=True)
class Concurrency:
    """Legs active in each receiver minute, per role. ``must`` and ``may``: the first and last
    minute the view must show, and may show (its rows run from the first leg's start minute
    to the last leg's end minute, however their moments stray)."""

    minutes: dict[int, dict[str, Bounds]] = field(default_factory=dict)
    must: range = range(0)
    may: range = range(0)

    def at(self, minute: int) -> dict[str, Bounds]:
        """The counts of ``minute`` (zero when no leg may be active in it)."""
        return self.minutes.get(minute) or {role: Bounds() for role in ROLES}


def concurrency_per_minute(legs: Iterable[LegTruth], clock: Clock) -> Concurrency:
    """Publishers and players per receiver minute, as ``concurrent_streams_per_minute``
    defines them: a started leg is active in minute ``m`` when it started before ``m``'s end
    and had not ended before ``m`` began. It ends at its terminal status, or, when that was
    lost, at its last delivered hook (where the projector closes it)."""
    result = Concurrency()
    spans = [
        (leg.role, Moment.of(clock, leg.started), Moment.of(clock, observed_end(leg)))
        for leg in legs
        if leg.started is not None
    ]
    for role, start, end in spans:
        nominal = range(minute_of(start.on_time), minute_of(end.on_time) + 1)
        certain = range(minute_of(start.latest), minute_of(end.earliest) + 1)
        for minute in range(minute_of(start.earliest), minute_of(end.latest) + 1):
            counts = result.minutes.setdefault(minute, {r: Bounds() for r in ROLES})
            counts[role].add(minute in nominal, minute in certain)
    if spans:
        first = min(spans, key=lambda span: span[1].on_time)[1]
        last = max(spans, key=lambda span: span[2].on_time)[2]
        result.must = range(minute_of(first.latest), minute_of(last.earliest) + 1)
        result.may = range(minute_of(first.earliest), minute_of(last.latest) + 1)
    return result


# -- duration distributions -------------------------------------------------------------------


def bucket_of(seconds: float) -> int:
    """The index of the bucket of :data:`DURATION_BUCKETS` holding ``seconds``."""
    return next(
        index
        for index, (_, _, upper) in enumerate(DURATION_BUCKETS)
        if upper is None or seconds < upper
    )


def duration_distribution(durations: Iterable[float], clock: Clock) -> dict[str, Bounds]:
    """Simulated durations counted per bucket of receiver seconds (a simulated duration ``d``
    lasts ``d / speed`` on the receiver's clock, within the clock's spread)."""
    result = {name: Bounds() for name, _, _ in DURATION_BUCKETS}
    for duration in durations:
        low, high = clock.seconds_range(duration)
        nominal = bucket_of(duration / clock.run.speed)
        possible = range(bucket_of(low), bucket_of(high) + 1)
        for index in possible:
            result[DURATION_BUCKETS[index][0]].add(index == nominal, len(possible) == 1)
    return result


def session_durations(sessions: Iterable[SessionTruth]) -> list[float]:
    """From ``ESTABLISHED`` to the end, of sessions that connected."""
    return [s.ended - s.connected for s in sessions if s.connected is not None]


def talk_times(calls: Iterable[CallTruth]) -> list[float]:
    """From ``ESTABLISHED`` to the terminal status, of answered calls."""
    return [c.ended - c.established for c in calls if c.established is not None]


# -- per app and day --------------------------------------------------------------------------


AppDay = tuple[str, date]


def days_of(clock: Clock, sim: float) -> tuple[date, list[date]]:
    """The UTC day of moment ``sim`` on time, and every day it may be stamped on."""
    moment = Moment.of(clock, sim)
    return day_of(moment.on_time), sorted({day_of(moment.earliest), day_of(moment.latest)})


def count_per_app_day(items: Iterable[tuple[str, float]], clock: Clock) -> dict[AppDay, Bounds]:
    """``(app, simulated moment)`` items counted per app and receiver day."""
    result: dict[AppDay, Bounds] = defaultdict(Bounds)
    for app, sim in items:
        nominal, days = days_of(clock, sim)
        for day in days:
            result[app, day].add(day == nominal, len(days) == 1)
    return dict(result)


def bug_report_moments(sessions: Iterable[SessionTruth]) -> list[tuple[str, float]]:
    """``(app, moment)`` of every ``submitBugReport``."""
    return [(s.app, at) for s in sessions for at in s.bug_reports_at]


def add_repeated_rows(
    counts: dict[AppDay, Bounds], sessions: Iterable[SessionTruth], table: str, clock: Clock
) -> tuple[int, int]:
    """Widens ``counts`` (per app and receiver day) by the rows of ``table`` that duplicated
    hooks must and may add (:attr:`SessionTruth.repeated_rows`); returns how many they must
    and may add in all."""
    must = may = 0
    for session in sessions:
        for name, at, surely, possibly in session.repeated_rows:
            if name != table:
                continue
            _, days = days_of(clock, at)
            for day in days:
                bounds = counts.setdefault((session.app, day), Bounds())
                bounds.low += not possibly and len(days) == 1
                bounds.high += not surely
            must += not possibly
            may += not surely
    return must, may


@dataclass(slots=True)
class DayUsage:
    """Simulated minutes published and played of the legs that started on one receiver day.
    ``legs``: legs that may count on this day, ``settled``: legs that must; ``uncertain``:
    minutes of legs that may count on a neighbouring day instead."""

    minutes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))
    legs: int = 0
    settled: int = 0
    uncertain: float = 0.0


def usage_per_app_day(legs: Iterable[LegTruth], clock: Clock) -> dict[AppDay, DayUsage]:
    """Minutes of started legs, from their start to their observable end, per app and the
    receiver day they started on (as ``usage_minutes_per_app_day`` counts them)."""
    result: dict[AppDay, DayUsage] = defaultdict(DayUsage)
    for leg in legs:
        if leg.started is None:
            continue
        minutes = (observed_end(leg) - leg.started) / 60
        nominal, days = days_of(clock, leg.started)
        for day in days:
            usage = result[leg.app, day]
            usage.legs += 1
            usage.settled += len(days) == 1
            usage.minutes[leg.role] += minutes if day == nominal else 0.0
            usage.uncertain += minutes if len(days) > 1 else 0.0
    return dict(result)


# -- stream_detail_records --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SdrLine:
    """One finished leg's SDR fields as the truth has them. ``starts`` and ``durations``: every
    rendering the projection may show, the on-time one first. ``inferred``: the terminal
    status was lost, so ``info`` is only how the projector's inferred reason begins."""

    media_session_id: str
    starts: tuple[str, ...]
    media_provider: str
    name: str
    durations: tuple[str, ...]
    disposition: str
    info: str
    inferred: bool
    type: str
    subscribers: Bounds
    ended: float


def render_start(wall: int) -> str:
    """``yyyy-MM-dd HH:mm:ss`` (UTC) of whole Unix second ``wall``."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_duration(seconds: int) -> str:
    """``HH:MM:SS`` of whole seconds."""
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def renderings(nominal: float, low: float, high: float) -> list[int]:
    """The whole seconds ``floor`` may give between ``low`` and ``high``, ``nominal``'s first."""
    first = math.floor(nominal)
    return [first] + [s for s in range(math.floor(low), math.floor(high) + 1) if s != first]


def subscribers(publisher: LegTruth, starts: Sequence[float], clock: Clock) -> Bounds:
    """Players of the publisher's name (``starts``: their simulated starts, sorted) that
    started while it was live, from its start to its observable end, both included."""
    begin, end, spread = publisher.started or 0.0, observed_end(publisher), clock.spread

    def between(low: float, high: float) -> int:
        return max(bisect.bisect_right(starts, high) - bisect.bisect_left(starts, low), 0)

    return Bounds(
        between(begin, end), between(begin + spread, end - spread),
        between(begin - spread, end + spread),
    )  # fmt: skip


def sdr_lines(legs: Sequence[LegTruth], clock: Clock) -> dict[str, SdrLine]:
    """The SDR line of every leg that started (they all end: by a terminal status, or by the
    projector's inference when it was lost), keyed by ``mediaSessionId``."""
    players: dict[str, list[float]] = defaultdict(list)
    for leg in legs:
        if leg.role == "player" and leg.started is not None:
            players[leg.name].append(leg.started)
    for starts in players.values():
        starts.sort()
    return {
        leg.media_session_id: sdr_line(leg, players.get(leg.name, []), clock)
        for leg in legs
        if leg.started is not None
    }


def sdr_line(leg: LegTruth, player_starts: Sequence[float], clock: Clock) -> SdrLine:
    """One started leg's SDR line; ``player_starts``: sorted starts of players of its name."""
    start, ended = Moment.of(clock, leg.started or 0.0), observed_end(leg)
    lasted = ended - (leg.started or 0.0)
    low, high = clock.seconds_range(lasted)
    publisher = leg.role == "publisher"
    return SdrLine(
        media_session_id=leg.media_session_id,
        starts=tuple(map(render_start, renderings(start.on_time, start.earliest, start.latest))),
        media_provider=leg.media_provider,
        name=leg.name,
        durations=tuple(map(render_duration, renderings(lasted / clock.run.speed, low, high))),
        disposition="TIMED_OUT" if leg.lost_terminal else leg.end_status,
        info=INFERRED_INFO if leg.lost_terminal else leg.end_info or "",
        inferred=leg.lost_terminal,
        type="PUBLISH" if publisher else "SUBSCRIBE",
        subscribers=subscribers(leg, player_starts, clock) if publisher else Bounds(),
        ended=ended,
    )
