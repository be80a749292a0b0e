"""A whole simulated day: sessions on nodes, the burst, WCS's quirks, sorted sends (pure).

:func:`build_day` is deterministic: the same :class:`Scenario` gives the same sends, byte for
byte, and the same truth. Sends are in simulated time; :mod:`simulator.load` maps them to
the wall clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import orjson

from simulator.bodies import SipAccount
from simulator.lifecycle import (
    PUBLISHER_STOP,
    SESSION_DISCONNECT,
    Hook,
    LegPlan,
    Published,
    Seat,
    Story,
    add_extras,
    close_session,
    open_session,
    play_call,
    play_leg,
    refuse_session,
    span,
)
from simulator.scenario import Scenario
from simulator.truth import LegTruth, RunInfo, Truth

STREAM_APPS = ("webinar", "defaultApp")
CALL_APP = "callcenter"
KINDS = (("broadcaster", 0.15), ("viewer", 0.55), ("caller", 0.30))
DURATIONS = {"broadcaster": (300.0, 2400.0), "viewer": (60.0, 1200.0), "caller": (60.0, 900.0)}
EVENT_HOOKS = frozenset({
    "ConnectionStatusEvent", "RegistrationStatusEvent", "StreamStatusEvent",
    "StreamKeepAliveEvent", "CallStatusEvent", "TransferStatusEvent", "DataStatusEvent",
    "BugReportStatusEvent", "SessionDebugStatusEvent",
})  # fmt: skip
"""Notifications WCS sends from its async pool. The other hooks are invocations WCS awaits
(it needs the answer to allow or veto the action), so nothing they cause can overtake them."""


@dataclass(frozen=True, slots=True)
class Send:
    """One HTTP request: POST ``hook`` with ``body`` at simulated moment ``at``."""

    at: float
    hook: str
    body: bytes
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    """A session to play: its kind, node and span in simulated time."""

    kind: str
    node: int
    start: float
    end: float


@dataclass(slots=True)
class Day:
    """The sends of a day in time order, and its truth (``wall_start``/delays still unset)."""

    sends: list[Send]
    truth: Truth
    published: list[Published] = field(default_factory=list)


def node_ids(rng: random.Random, count: int) -> list[str]:
    """WCS node ids: a random token, ``@``, the node's address."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return [
        "".join(rng.choice(alphabet) for _ in range(32)) + f"@10.0.{i // 250}.{i % 250 + 1}"
        for i in range(count)
    ]


def plan_visits(rng: random.Random, scenario: Scenario) -> list[Visit]:
    """Sessions back to back on ``scenario.sessions`` seats, so about that many are open."""
    visits = []
    kinds = [kind for kind, _ in KINDS]
    weights = [weight for _, weight in KINDS]
    for _ in range(scenario.sessions):
        at = rng.uniform(0, 60)
        while True:
            kind = rng.choices(kinds, weights)[0]
            low, high = DURATIONS[kind]
            end = min(at + rng.uniform(low, high), scenario.duration_s - 30)
            if end - at < 45:
                break
            visits.append(Visit(kind, rng.randrange(scenario.nodes), at, end))
            at = end + rng.uniform(5, 60)
    return visits


def play_broadcaster(
    story: Story, rng: random.Random, nodes: list[str], visit: Visit, skews: list[int]
) -> list[Published]:
    """A session publishing one or two streams; sometimes it drops mid-stream."""
    app = rng.choice(STREAM_APPS)
    seat = open_session(story, rng, node=nodes[visit.node], app=app, at=visit.start)
    begin, finish = seat.connected + span(rng, 1, 5), visit.end - span(rng, 1, 3)
    count = 2 if finish - begin > 240 and rng.random() < 0.3 else 1
    abrupt = rng.random() < 0.08
    published = []
    for index in range(count):
        start = begin + (finish - begin) * index / count
        end = begin + (finish - begin) * (index + 1) / count - (2 if index < count - 1 else 0)
        plan = LegPlan(start, end)
        if abrupt and index == count - 1:
            plan = LegPlan(start, visit.end + span(rng, 0.02, 0.2), False, SESSION_DISCONNECT)
        name = f"{app}-room-{rng.randrange(10_000)}"
        leg = play_leg(
            story, rng, seat, name=name, published=True, plan=plan, skew_ms=skews[visit.node]
        )
        if leg.started is not None:
            published.append(Published(app, name, leg.started, leg.ended))
    add_extras(story, rng, seat, seat.connected + 1, visit.end - 1)
    close_session(story, seat, visit.end)
    return published


def play_viewer(
    story: Story,
    rng: random.Random,
    nodes: list[str],
    visit: Visit,
    *,
    published: list[Published],
    skews: list[int],
) -> None:
    """A session that plays live streams of its app one after another."""
    app = rng.choice(STREAM_APPS)
    seat = open_session(story, rng, node=nodes[visit.node], app=app, at=visit.start)
    at = seat.connected + span(rng, 1, 5)
    while at < visit.end - 20:
        live = [p for p in published if p.app == app and p.started <= at and p.ended > at + 5]
        if not live:
            at += span(rng, 20, 60)
            continue
        stream = rng.choice(live)
        at = play_one(
            story, rng, seat, stream, at=at, latest=visit.end - 1, skew_ms=skews[visit.node]
        )
        at += span(rng, 2, 20)
    add_extras(story, rng, seat, seat.connected + 1, visit.end - 1)
    close_session(story, seat, visit.end)


def play_one(
    story: Story,
    rng: random.Random,
    seat: Seat,
    stream: Published,
    *,
    at: float,
    latest: float,
    skew_ms: int,
) -> float:
    """One play leg of ``stream`` from ``at``; stopped by the viewer, or with the publisher."""
    end = min(at + span(rng, 20, 600), latest)
    plan = LegPlan(at, end)
    if stream.ended < end:
        plan = LegPlan(at, stream.ended + span(rng, 0.05, 0.3), False, PUBLISHER_STOP)
    leg = play_leg(story, rng, seat, name=stream.name, published=False, plan=plan, skew_ms=skew_ms)
    return leg.ended


def play_caller(
    story: Story, rng: random.Random, nodes: list[str], visit: Visit, login: str
) -> None:
    """A SIP session: registration, calls one after another, then disconnect."""
    sip = SipAccount(login, f"pw-{rng.getrandbits(32):08x}")
    seat = open_session(story, rng, node=nodes[visit.node], app=CALL_APP, at=visit.start, sip=sip)
    at = seat.connected + span(rng, 2, 10)
    last = at
    while at < visit.end - 30:
        last = play_call(story, rng, seat, at, min(at + span(rng, 20, 400), visit.end - 5))
        at = last + span(rng, 5, 60)
    add_extras(story, rng, seat, seat.connected + 1, visit.end - 1)
    close_session(story, seat, max(visit.end, last + span(rng, 1, 3)))


def play_burst(
    story: Story, rng: random.Random, nodes: list[str], scenario: Scenario, skews: list[int]
) -> list[Published]:
    """A popular stream: ``quirks.burst`` players join it within one simulated second."""
    burst_at = max(60.0, scenario.duration_s * 0.25)
    publisher = open_session(story, rng, node=nodes[0], app="webinar", at=burst_at - 45)
    start = publisher.connected + 1
    end = max(burst_at + 90, scenario.duration_s * 0.6)
    plan = LegPlan(start, end, can_fail=False)
    leg = play_leg(
        story, rng, publisher, name="keynote", published=True, plan=plan, skew_ms=skews[0]
    )
    close_session(story, publisher, leg.ended + span(rng, 0.5, 2))
    assert leg.started is not None, "the popular stream cannot fail"
    stream = Published("webinar", "keynote", leg.started, leg.ended)
    for index in range(scenario.quirks.burst):
        join = burst_at + rng.random()
        node = index % len(nodes)
        seat = open_session(story, rng, node=nodes[node], app="webinar", at=join - 0.6)
        latest = leg.ended + 5 if rng.random() < 0.6 else span(rng, join + 20, leg.ended + 5)
        ended = play_one(story, rng, seat, stream, at=join, latest=latest, skew_ms=skews[node])
        close_session(story, seat, ended + span(rng, 0.5, 3))
    return [stream]


def generate_story(scenario: Scenario) -> tuple[Story, list[Published]]:
    """Every session of the day, before quirks."""
    rng = random.Random(scenario.seed)
    nodes = node_ids(rng, scenario.nodes)
    skews = [round(scenario.quirks.skew_s * 1000)] + [0] * (scenario.nodes - 1)
    story = Story(scenario.keepalive_s, start_ms=round(scenario.start * 1000))
    visits = plan_visits(rng, scenario)
    published: list[Published] = []
    for visit in (v for v in visits if v.kind == "broadcaster"):
        published += play_broadcaster(story, rng, nodes, visit, skews)
    if scenario.quirks.burst:
        published += play_burst(story, rng, nodes, scenario, skews)
    for index, visit in enumerate(visits):
        if visit.kind != "broadcaster" and rng.random() < 0.02:
            app = CALL_APP if visit.kind == "caller" else rng.choice(STREAM_APPS)
            refuse_session(story, rng, node=nodes[visit.node], app=app, at=visit.start)
        elif visit.kind == "viewer":
            play_viewer(story, rng, nodes, visit, published=published, skews=skews)
        elif visit.kind == "caller":
            play_caller(story, rng, nodes, visit, str(1000 + index))
    return story, published


def lose_terminals(
    rng: random.Random, story: Story, scenario: Scenario
) -> tuple[list[Hook], set[str]]:
    """Drops the terminal status of a share of legs that sent keep-alives and ended well
    before the day's end (so the projector can notice the silence)."""
    share = scenario.quirks.lost_terminals
    latest = scenario.duration_s - 10 * scenario.keepalive_s
    lost = {
        leg.media_session_id
        for leg in story.legs
        if share
        and leg.started is not None
        and leg.ended - leg.started > 2 * scenario.keepalive_s
        and leg.ended < latest
        and rng.random() < share
    }
    kept = [h for h in story.hooks if not (h.terminal and h.leg in lost)]
    return kept, lost


def deliver(
    rng: random.Random, hooks: list[Hook], scenario: Scenario
) -> list[tuple[float, Hook, bool]]:
    """Arrival moments after reordering (events only) and duplicates:
    ``(at, hook, is_duplicate)``."""
    quirks = scenario.quirks
    low, high = quirks.duplicate_delay_s
    arrivals = []
    for hook in hooks:
        at = hook.at
        if quirks.reorder and hook.hook in EVENT_HOOKS and rng.random() < quirks.reorder:
            at += rng.uniform(0, quirks.reorder_window_s)
        arrivals.append((at, hook, False))
        if quirks.duplicates and rng.random() < quirks.duplicates:
            arrivals.append((at + rng.uniform(low, high), hook, True))
    arrivals.sort(key=lambda arrival: arrival[0])
    return arrivals


def mark_delivered(legs: list[LegTruth], arrivals: list[tuple[float, Hook, bool]]) -> None:
    """Sets each leg's ``last_delivered`` to its latest arriving hook, and ``keepalives`` and
    ``last_keepalive`` to its arriving keep-alives, duplicates aside (the projector sets those
    aside as retries). A keep-alive that arrives after the leg's terminal status (reordered)
    was still delivered, so it counts."""
    last: dict[str, float] = {}
    keepalives: dict[str, list[float]] = {}
    for at, hook, duplicate in arrivals:
        if hook.leg is None or duplicate:
            continue
        last[hook.leg] = max(last.get(hook.leg, at), at)
        if hook.hook == "StreamKeepAliveEvent":
            keepalives.setdefault(hook.leg, []).append(at)
    for leg in legs:
        leg.last_delivered = round(last.get(leg.media_session_id, leg.ended), 6)
        delivered = keepalives.get(leg.media_session_id, [])
        leg.keepalives = len(delivered)
        leg.last_keepalive = round(max(delivered), 6) if delivered else None


def build_day(scenario: Scenario) -> Day:
    """The day's sends in arrival order, with its truth."""
    story, published = generate_story(scenario)
    rng = random.Random(scenario.seed * 7919 + 1)
    hooks, lost = lose_terminals(rng, story, scenario)
    arrivals = deliver(rng, hooks, scenario)
    mark_delivered(story.legs, arrivals)
    for leg in story.legs:
        leg.lost_terminal = leg.media_session_id in lost
    cache: dict[int, bytes] = {}
    sends = [
        Send(round(at, 6), hook.hook, cache.setdefault(id(hook), orjson.dumps(hook.body)), dup)
        for at, hook, dup in arrivals
    ]
    run = RunInfo(
        seed=scenario.seed,
        speed=scenario.speed,
        sim_start=scenario.start,
        duration_s=scenario.duration_s,
        keepalive_s=scenario.keepalive_s,
        slack_s=scenario.quirks.slack_s,
        hooks=len(sends),
        duplicates=sum(s.duplicate for s in sends),
        lost_terminals=len(lost),
    )
    truth = Truth(run, story.sessions, story.legs, story.calls)
    return Day(sends, truth, published)
