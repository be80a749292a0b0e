"""The day generator (pure): deterministic, life cycles in order, quirks as configured."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import orjson
import pytest

from ingest.envelope import KNOWN_HOOKS
from simulator.lifecycle import Hook
from simulator.scenario import MIN_REPEAT_S, Quirks, Scenario
from simulator.schedule import EVENT_HOOKS, Day, build_day, generate_story, mark_delivered
from simulator.truth import LegTruth

QUIRKS = Quirks(duplicates=0.05, reorder=0.1, lost_terminals=0.3, skew_s=90.0, burst=40)
DAY = Scenario(seed=5, nodes=3, sessions=30, duration_s=900.0, speed=50.0, quirks=QUIRKS)


@pytest.fixture(scope="module")
def day() -> Day:
    return build_day(DAY)


def test_the_same_seed_gives_the_same_day(day: Day) -> None:
    again = build_day(DAY)
    assert again.sends == day.sends
    assert again.truth == day.truth
    other = build_day(replace(DAY, seed=6))
    assert other.sends != day.sends


def test_sends_are_in_time_order_and_name_known_hooks(day: Day) -> None:
    moments = [send.at for send in day.sends]
    assert moments == sorted(moments)
    hooks = {send.hook for send in day.sends}
    assert hooks <= KNOWN_HOOKS
    assert KNOWN_HOOKS - hooks <= {"pauseStream"}, "every hook of the reference but pauseStream"


def leg_hooks(hooks: list[Hook]) -> dict[str, list[Hook]]:
    legs: dict[str, list[Hook]] = defaultdict(list)
    for hook in hooks:
        if hook.leg is not None:
            legs[hook.leg].append(hook)
    return legs


def test_every_leg_follows_its_life_cycle() -> None:
    story, _ = generate_story(DAY)
    legs = leg_hooks(story.hooks)
    for truth in story.legs:
        hooks = sorted(legs[truth.media_session_id], key=lambda h: h.at)
        names = [h.hook for h in hooks]
        assert names[0] == ("publishStream" if truth.role == "publisher" else "playStream")
        assert hooks[-1].terminal
        assert hooks[-1].body["status"] == truth.end_status
        assert hooks[-1].at == truth.ended
        assert hooks[-1].body.get("info") == truth.end_info
        statuses = [h.body["status"] for h in hooks if h.hook == "StreamStatusEvent"]
        active = "PUBLISHING" if truth.role == "publisher" else "PLAYING"
        assert statuses in ([truth.end_status], [active, truth.end_status])
        assert (truth.started is None) == (statuses == [truth.end_status])
        keepalives = [h.at for h in hooks if h.hook == "StreamKeepAliveEvent"]
        if truth.started is not None:
            expected = int((truth.ended - truth.started) // DAY.keepalive_s)
            assert len(keepalives) in {expected - 1, expected, expected + 1}


def test_players_of_a_stream_stop_with_its_publisher() -> None:
    story, published = generate_story(DAY)
    ends = {p.name: p.ended for p in published}
    stopped = [
        leg
        for leg in story.legs
        if leg.role == "player" and leg.end_info == "Stopped by publisher stop"
    ]
    assert stopped
    for leg in stopped:
        assert 0 < leg.ended - ends[leg.name] < 1


def test_identical_bodies_of_a_hook_are_far_apart() -> None:
    """Only the intended duplicates may look like WCS retries to the projector."""
    story, _ = generate_story(DAY)
    seen: dict[bytes, float] = {}
    for hook in sorted(story.hooks, key=lambda h: h.at):
        key = hook.hook.encode() + orjson.dumps(hook.body)
        if key in seen:
            assert hook.at - seen[key] >= MIN_REPEAT_S, hook
        seen[key] = hook.at


def test_calls_go_through_their_outcomes() -> None:
    story, _ = generate_story(replace(DAY, sessions=80))
    outcomes = {(c.direction, c.status, c.established is not None) for c in story.calls}
    assert ("outgoing", "FINISH", True) in outcomes
    assert ("outgoing", "BUSY", False) in outcomes
    assert ("outgoing", "FAILED", False) in outcomes
    assert ("incoming", "FINISH", True) in outcomes
    assert any(c.hold_count for c in story.calls)
    assert {c.transfer_status for c in story.calls} >= {"COMPLETED", "FAILED"}
    refused = [s for s in story.sessions if s.status == "FAILED"]
    assert refused
    assert all(s.connected is None for s in refused)


def test_duplicates_repeat_a_body_shortly_after(day: Day) -> None:
    duplicates = [s for s in day.sends if s.duplicate]
    assert len(duplicates) == day.truth.run.duplicates > 0
    low, high = QUIRKS.duplicate_delay_s
    for dup in duplicates:
        originals = [
            s for s in day.sends if not s.duplicate and s.body == dup.body and s.hook == dup.hook
        ]
        assert any(low <= dup.at - s.at <= high for s in originals)


def test_lost_terminals_are_never_sent(day: Day) -> None:
    lost = {leg.media_session_id: leg for leg in day.truth.legs if leg.lost_terminal}
    assert len(lost) == day.truth.run.lost_terminals > 0
    for send in day.sends:
        body = orjson.loads(send.body)
        leg = lost.get(body.get("mediaSessionId"))
        if leg is not None and send.hook == "StreamStatusEvent":
            assert body["status"] not in {"UNPUBLISHED", "STOPPED", "FAILED"}
    for leg in lost.values():
        assert leg.started is not None
        assert leg.last_delivered < leg.ended + QUIRKS.slack_s


def test_the_skewed_node_moves_create_date(day: Day) -> None:
    start_ms = round(DAY.start * 1000)
    nodes = sorted({leg.node_id for leg in day.truth.legs}, key=lambda n: n.split("@")[1])
    skewed = nodes[0]
    for leg in day.truth.legs:
        offset = 90_000 if leg.node_id == skewed else 0
        assert leg.created_ms == start_ms + round(leg.requested * 1000) + offset


def test_the_burst_joins_within_one_second(day: Day) -> None:
    players = [leg for leg in day.truth.legs if leg.name == "keynote" and leg.role == "player"]
    requested = sorted(leg.requested for leg in players)
    burst = max(sum(1 for other in requested if first <= other < first + 1) for first in requested)
    assert burst >= QUIRKS.burst


def test_only_events_are_held_back(day: Day) -> None:
    """Invocations (connect, publishStream, call, …) arrive at their moment: WCS awaits them."""
    story, _ = generate_story(DAY)
    moments: dict[tuple[str, bytes], set[float]] = defaultdict(set)
    for hook in story.hooks:
        moments[hook.hook, orjson.dumps(hook.body)].add(hook.at)
    moved = [s for s in day.sends if not s.duplicate and s.at not in moments[s.hook, s.body]]
    assert moved, "some events are reordered"
    assert {s.hook for s in moved} <= EVENT_HOOKS


def test_delivered_keepalives_count_late_ones_but_not_duplicates() -> None:
    leg = LegTruth("L", "node", "s", "app", "a", "player", 0, requested=0.0)
    leg.started, leg.ended = 1.0, 30.0
    keepalive = Hook(10.0, "StreamKeepAliveEvent", {}, "L")
    terminal = Hook(30.0, "StreamStatusEvent", {}, "L", terminal=True)
    arrivals = [
        (10.0, keepalive, False),
        (10.2, keepalive, True),  # a retry: the projector sets it aside
        (20.0, keepalive, False),
        (30.0, terminal, False),
        (30.3, keepalive, False),  # sent at 29.9, overtaken by the terminal status
    ]
    mark_delivered([leg], arrivals)
    assert (leg.keepalives, leg.last_keepalive, leg.last_delivered) == (3, 30.3, 30.3)


def test_every_keepalive_sent_is_delivered_once(day: Day) -> None:
    sent: dict[str, int] = defaultdict(int)
    for send in day.sends:
        if send.hook == "StreamKeepAliveEvent" and not send.duplicate:
            sent[orjson.loads(send.body)["mediaSessionId"]] += 1
    counted = {leg.media_session_id: leg.keepalives for leg in day.truth.legs if leg.keepalives}
    assert counted == sent
