"""The life cycles of rest-hooks.md, played out in simulated time (pure, deterministic).

A :class:`Story` collects the hooks WCS sends and the truth of what happened. The functions
here add one session, one leg or one call to it; every random choice comes from the ``rng``
passed in, so a seed fixes the day. Times are simulated seconds after the day's start.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from simulator import bodies
from simulator.bodies import Body, Call, Context, Leg, SipAccount
from simulator.scenario import MIN_REPEAT_S
from simulator.truth import CallTruth, LegTruth, SessionTruth

START_FAILURES = ("Failed by ICE timeout", "Failed by DTLS fingerprint error", "No common codecs")
MID_FAILURES = ("Failed by RTP activity", "Failed by ICE keep alive", "Failed by DTLS error")
CALL_FAILURES = ((403, "SIP 403 FORBIDDEN"), (404, "SIP 404 NOT FOUND"), (480, "SIP 480"))
CLEARING = "Normal call clearing"
PUBLISHER_STOP = "Stopped by publisher stop"
SESSION_DISCONNECT = "Stopped by session disconnect"


@dataclass(frozen=True, slots=True)
class Hook:
    """One hook WCS sends at simulated moment ``at``; ``leg`` and ``terminal`` let quirks
    find a leg's terminal ``StreamStatusEvent``."""

    at: float
    hook: str
    body: Body
    leg: str | None = None
    terminal: bool = False


@dataclass(slots=True)
class Story:
    """The hooks and the truth of a day, as they are generated."""

    keepalive_s: float
    start_ms: int = 0
    hooks: list[Hook] = field(default_factory=list)
    sessions: list[SessionTruth] = field(default_factory=list)
    legs: list[LegTruth] = field(default_factory=list)
    calls: list[CallTruth] = field(default_factory=list)

    def add(
        self, at: float, hook: str, body: Body, leg: str | None = None, terminal: bool = False
    ) -> None:
        self.hooks.append(Hook(round(at, 6), hook, body, leg, terminal))


@dataclass(slots=True)
class Published:
    """A publish leg that went live: players may join it between ``started`` and ``ended``."""

    app: str
    name: str
    started: float
    ended: float


@dataclass(slots=True)
class Seat:
    """One session being played: its context, truth and SIP account."""

    ctx: Context
    truth: SessionTruth
    token: str
    sip: SipAccount | None
    connected: float


def new_id(rng: random.Random, version: int = 4) -> str:
    """A UUID drawn from ``rng`` (v1-shaped ids for the ones the Web SDK mints)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=version))


def span(rng: random.Random, low: float, high: float) -> float:
    """A uniform duration in ``[low, high]``."""
    return rng.uniform(low, high)


# -- sessions -------------------------------------------------------------------------------


def open_session(
    story: Story,
    rng: random.Random,
    *,
    node: str,
    app: str,
    at: float,
    sip: SipAccount | None = None,
) -> Seat:
    """``connect`` then ``ConnectionStatusEvent ESTABLISHED`` (and SIP registration)."""
    ctx = Context(node, app, new_id(rng))
    user = f"user-{rng.randrange(10_000)}"
    token = f"tok-{rng.getrandbits(64):016x}"
    connect = bodies.connect(ctx, user, token, sip)
    story.add(at, "connect", connect)
    connected = at + span(rng, 0.05, 0.3)
    story.add(connected, "ConnectionStatusEvent", bodies.connection_status(connect, "ESTABLISHED"))
    if sip is not None:
        registered = bodies.registration_status(ctx, sip, "REGISTERED")
        story.add(connected + span(rng, 0.1, 0.5), "RegistrationStatusEvent", registered)
    truth = SessionTruth(node, ctx.session_id, app, connected=round(connected, 6), ended=0.0)
    story.sessions.append(truth)
    return Seat(ctx, truth, token, sip, connected)


def refuse_session(story: Story, rng: random.Random, *, node: str, app: str, at: float) -> None:
    """``connect`` then ``ConnectionStatusEvent FAILED``: the connection never came up.

    On an error WCS sends only the context, ``status`` and ``info`` [LIST]; the info text is
    not documented (inferred here).
    """
    ctx = Context(node, app, new_id(rng))
    story.add(at, "connect", bodies.connect(ctx, f"user-{rng.randrange(10_000)}", "tok", None))
    failed = at + span(rng, 0.5, 5)
    body = ctx.body() | {"status": "FAILED", "info": "Failed to establish connection"}
    story.add(failed, "ConnectionStatusEvent", body)
    truth = SessionTruth(node, ctx.session_id, app, None, round(failed, 6), status="FAILED")
    story.sessions.append(truth)


def close_session(story: Story, seat: Seat, at: float) -> None:
    """``ConnectionStatusEvent DISCONNECTED`` at ``at``."""
    connect = bodies.connect(seat.ctx, "", seat.token, seat.sip)
    story.add(at, "ConnectionStatusEvent", bodies.connection_status(connect, "DISCONNECTED"))
    seat.truth.ended = round(at, 6)


def add_extras(story: Story, rng: random.Random, seat: Seat, start: float, end: float) -> None:
    """Data messages, a bug report, a debug window with log pushes, at random moments."""
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        add_data(story, rng, seat, span(rng, start, end))
    if rng.random() < 0.15:
        add_bug_report(story, rng, seat, span(rng, start, end))
    if rng.random() < 0.15 and end - start > 30:
        begin = span(rng, start, end - 25)
        add_debug(story, rng, seat, begin, span(rng, begin + 20, end))
    elif rng.random() < 0.2:
        add_logs(story, rng, seat, span(rng, start, end))


def add_data(story: Story, rng: random.Random, seat: Seat, at: float) -> None:
    """``OnDataEvent`` and its ``DataStatusEvent`` (rarely ``FAILED``)."""
    operation = new_id(rng, version=1)
    payload = {"type": "chat", "text": f"message {rng.randrange(10**6)}"}
    story.add(at, "OnDataEvent", bodies.data(seat.ctx, operation, payload))
    status, info = ("FAILED", "Failed by error") if rng.random() < 0.05 else ("ACCEPTED", None)
    story.add(
        at + span(rng, 0.02, 0.2),
        "DataStatusEvent",
        bodies.data_status(seat.ctx, operation, status, info),
    )
    seat.truth.data[operation] = status


def add_bug_report(story: Story, rng: random.Random, seat: Seat, at: float) -> None:
    """``submitBugReport`` and the ``BugReportStatusEvent`` naming the saved file."""
    text = f"No video from remote party ({rng.randrange(10**6)})"
    story.add(at, "submitBugReport", bodies.bug_report(seat.ctx, text, "no_media"))
    filename = f"report-{seat.ctx.session_id}-{int(at * 1000)}.txt"
    story.add(
        at + span(rng, 0.3, 1.5),
        "BugReportStatusEvent",
        bodies.bug_report_status(seat.ctx, filename),
    )
    seat.truth.bug_reports.append(filename)
    seat.truth.bug_reports_at.append(round(at, 6))


def add_debug(story: Story, rng: random.Random, seat: Seat, start: float, end: float) -> None:
    """``sessionDebug start`` … log pushes … ``sessionDebug stop``, each with its status."""
    story.add(start, "sessionDebug", bodies.session_debug(seat.ctx, "start"))
    story.add(
        start + 0.1, "SessionDebugStatusEvent", bodies.session_debug_status(seat.ctx, "STARTED")
    )
    at = start + span(rng, 1, 5)
    while at < end - 1:
        add_logs(story, rng, seat, at)
        at += span(rng, 5, 15)
    story.add(end, "sessionDebug", bodies.session_debug(seat.ctx, "stop"))
    story.add(
        end + 0.1, "SessionDebugStatusEvent", bodies.session_debug_status(seat.ctx, "STOPPED")
    )
    seat.truth.debug_events += 4


def add_logs(story: Story, rng: random.Random, seat: Seat, at: float) -> None:
    """One ``pushLogs`` chunk (its text names the moment, so chunks differ)."""
    lines = [
        f"{at:012.3f} INFO  webrtc - ICE connection state: connected",
        f"{at + 0.5:012.3f} DEBUG webrtc - stats {rng.randrange(10**6)}",
    ]
    story.add(at, "pushLogs", bodies.push_logs(seat.ctx, "\n".join(lines) + "\n"))
    seat.truth.log_pushes += 1


# -- stream legs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegPlan:
    """How a leg should go: requested at ``start``, and unless it fails, ended at ``end``
    by the client (``stop_request``) or by WCS with ``end_info``."""

    start: float
    end: float
    stop_request: bool = True
    end_info: str | None = None
    can_fail: bool = True


def play_leg(
    story: Story,
    rng: random.Random,
    seat: Seat,
    *,
    name: str,
    published: bool,
    plan: LegPlan,
    skew_ms: int,
) -> LegTruth:
    """One publish or play leg: request, active status, keep-alives, stop, terminal status.

    Some legs fail: right after the request (no active status) or mid-way (``FAILED`` with a
    real info string). Returns its truth; ``ended`` is the terminal event's moment.
    """
    leg_id = new_id(rng, version=1)
    leg = Leg(leg_id, name, published, story.start_ms + round(plan.start * 1000) + skew_ms)
    role = "publisher" if published else "player"
    truth = LegTruth(leg_id, seat.ctx.node_id, seat.ctx.session_id, seat.ctx.app, name, role,
                     leg.create_date_ms, requested=round(plan.start, 6))  # fmt: skip
    story.legs.append(truth)
    seat.truth.streams += 1
    request_hook = "publishStream" if published else "playStream"
    request = bodies.stream_request(seat.ctx, leg, seat.token)
    truth.media_provider = str(request["mediaProvider"])
    story.add(plan.start, request_hook, request, leg_id)
    if plan.can_fail and rng.random() < 0.04:
        failed = plan.start + span(rng, 0.5, 3)
        return end_leg(story, truth, seat, leg, at=failed, status="FAILED",
                       info=rng.choice(START_FAILURES))  # fmt: skip
    active = "PUBLISHING" if published else "PLAYING"
    started = plan.start + span(rng, 0.2, 0.8)
    story.add(started, "StreamStatusEvent", bodies.stream_status(seat.ctx, leg, active), leg_id)
    truth.started = round(started, 6)
    end, info, stop = plan.end, plan.end_info, plan.stop_request
    status = "UNPUBLISHED" if published else "STOPPED"
    if plan.can_fail and rng.random() < 0.06 and end - started > 5:
        end, status, stop = span(rng, started + 2, end), "FAILED", False
        info = rng.choice(MID_FAILURES)
    add_keepalives(story, seat, leg, status=active, started=started, end=end)
    if not published and rng.random() < 0.1 and end - started > 3:
        snapshot = seat.ctx.body() | {"name": name, "mediaSessionId": leg_id}
        story.add(span(rng, started + 1, end - 1), "snapshot", snapshot, leg_id)
        truth.snapshots += 1
    if stop:
        stop_hook = "unPublishStream" if published else "stopStream"
        story.add(end, stop_hook, bodies.stream_stop(seat.ctx, leg), leg_id)
        end += span(rng, 0.05, 0.3)
    return end_leg(story, truth, seat, leg, at=end, status=status, info=info)


def end_leg(
    story: Story,
    truth: LegTruth,
    seat: Seat,
    leg: Leg,
    *,
    at: float,
    status: str,
    info: str | None,
) -> LegTruth:
    """The terminal ``StreamStatusEvent``."""
    body = bodies.stream_status(seat.ctx, leg, status, info)
    story.add(at, "StreamStatusEvent", body, leg.media_session_id, terminal=True)
    truth.ended, truth.end_status, truth.end_info = round(at, 6), status, info
    truth.last_delivered = truth.ended
    return truth


def add_keepalives(
    story: Story, seat: Seat, leg: Leg, *, status: str, started: float, end: float
) -> None:
    """``StreamKeepAliveEvent`` every interval after the leg went live, before ``end``."""
    body = bodies.stream_status(seat.ctx, leg, status)
    at = started + story.keepalive_s
    while at < end:
        story.add(at, "StreamKeepAliveEvent", body, leg.media_session_id)
        at += story.keepalive_s


# -- calls ----------------------------------------------------------------------------------


@dataclass(slots=True)
class CallRun:
    """A call being played: its parties, truth and the moment of its latest event."""

    seat: Seat
    call: Call
    truth: CallTruth
    at: float

    def status(
        self, story: Story, at: float, status: str, sip: int | None, info: str | None = None
    ) -> None:
        """A ``CallStatusEvent``; a terminal one fixes the call's end."""
        body = bodies.call_status(self.seat.ctx, self.call, status, sip, info)
        story.add(at, "CallStatusEvent", body)
        self.at = at
        if status in {"FINISH", "BUSY", "FAILED"}:
            self.truth.ended, self.truth.status, self.truth.info = round(at, 6), status, info

    def action(self, story: Story, at: float, hook: str, **fields: object) -> None:
        story.add(at, hook, bodies.call_action(self.seat.ctx, self.call, **fields))
        self.at = at


def start_call(story: Story, rng: random.Random, seat: Seat, at: float, incoming: bool) -> CallRun:
    """The call object and its truth; the first hook (``call``/``OnCallEvent``) at ``at``."""
    assert seat.sip is not None, "calls need a SIP session"
    other = str(rng.randrange(2000, 2999))
    caller, callee = (other, seat.sip.login) if incoming else (seat.sip.login, other)
    call = Call(new_id(rng, version=1), incoming, caller, callee, f"User {caller}")
    direction = "incoming" if incoming else "outgoing"
    ctx = seat.ctx
    truth = CallTruth(
        call.call_id, ctx.node_id, ctx.session_id, ctx.app, direction, caller, callee, round(at, 6)
    )
    story.calls.append(truth)
    seat.truth.calls += 1
    run = CallRun(seat, call, truth, at)
    if incoming:
        story.add(at, "OnCallEvent", bodies.incoming_call(seat.ctx, call))
    else:
        story.add(at, "call", bodies.call_request(seat.ctx, call, f"T-{rng.randrange(10**4)}"))
    return run


def play_call(story: Story, rng: random.Random, seat: Seat, start: float, end: float) -> float:
    """One SIP call between ``start`` and about ``end``; returns the moment it ended.

    Outgoing: ``call`` → TRYING → RING → ESTABLISHED, or BUSY, FAILED, or not answered.
    Incoming: ``OnCallEvent`` → ``answer`` → ESTABLISHED, or missed. Answered calls talk,
    with DTMF, hold/unhold and transfers, until ``hangup`` → FINISH (or the far end hangs up).
    """
    run = start_call(story, rng, seat, start, incoming=rng.random() < 0.3)
    if run.call.incoming:
        if rng.random() < 0.15:
            run.status(story, start + span(rng, 8, 25), "FINISH", None, CLEARING)
            return run.at
        run.at = start + span(rng, 2, 8)
        story.add(run.at, "answer", bodies.call_request(seat.ctx, run.call, "T-in"))
    else:
        run.status(story, start + span(rng, 0.05, 0.2), "TRYING", 100)
        outcome = rng.random()
        if outcome < 0.08:
            sip, info = rng.choice(CALL_FAILURES)
            run.status(story, run.at + span(rng, 0.3, 2), "FAILED", sip, info)
            return run.at
        run.status(story, run.at + span(rng, 0.3, 1.5), "RING", 180)
        if outcome < 0.18:
            run.status(story, run.at + span(rng, 1, 5), "BUSY", 486, "Busy here")
            return run.at
        if outcome < 0.25:
            run.action(story, run.at + span(rng, 10, 25), "hangup")
            run.status(story, run.at + span(rng, 0.05, 0.3), "FINISH", None, CLEARING)
            return run.at
    established = run.at + span(rng, 0.2, 10)
    run.status(story, established, "ESTABLISHED", 200)
    run.truth.established = round(established, 6)
    talk(story, rng, run, max(end, established + 20))
    return run.at


def talk(story: Story, rng: random.Random, run: CallRun, end: float) -> None:
    """An established call until ``end``: DTMF, holds, maybe a transfer, then the end."""
    at = run.at + span(rng, MIN_REPEAT_S, 15)
    while at < end - MIN_REPEAT_S * 2:
        choice = rng.random()
        if choice < 0.4:
            digit = rng.choice("0123456789*#")
            run.action(story, at, "sendDtmf", type="RFC2833", dtmf=digit)
            run.truth.dtmf = (run.truth.dtmf or "") + digit
        elif choice < 0.6 and hold_cycle(story, rng, run, at):
            return
        at = run.at + span(rng, MIN_REPEAT_S, 30)
    if rng.random() < 0.5:
        run.action(story, max(at, end), "hangup")
    run.status(story, max(at, end) + span(rng, 0.05, 0.3), "FINISH", None, CLEARING)


def hold_cycle(story: Story, rng: random.Random, run: CallRun, at: float) -> bool:
    """hold → HOLD → (a transfer sometimes) → unhold → ESTABLISHED. Returns True when a
    completed transfer ended the call."""
    transfer = rng.random() < 0.3
    run.action(story, at, "hold", **({"holdForTransfer": True} if transfer else {}))
    held = at + span(rng, 0.1, 0.3)
    run.status(story, held, "HOLD", 200)
    run.truth.hold_count += 1
    if transfer:
        target = str(rng.randrange(3000, 3999))
        run.action(story, held + span(rng, 1, 3), "transfer", target=target)
        ok = rng.random() < 0.6
        for status, info in (("ACCEPTED", None), ("TRYING", None)) + (
            (("COMPLETED", None),) if ok else (("FAILED", "SIP 404 NOT FOUND"),)
        ):
            body = bodies.transfer_status(run.seat.ctx, run.call, target, status, info)
            run.at += span(rng, 0.1, 1.5)
            story.add(run.at, "TransferStatusEvent", body)
        run.truth.transfer_status = "COMPLETED" if ok else "FAILED"
        if ok:
            run.status(story, run.at + span(rng, 0.1, 0.5), "FINISH", None, CLEARING)
            run.truth.held_s += run.at - held
            return True
    resume = max(run.at, held) + span(rng, MIN_REPEAT_S, 30)
    run.action(story, resume, "unhold")
    established = resume + span(rng, 0.1, 0.3)
    run.status(story, established, "ESTABLISHED", 200)
    run.truth.held_s += established - held
    return False
