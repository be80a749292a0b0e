"""The sample story of ``shared/wcs/samples`` as Kafka records, and helpers to project it.

Records are built with :class:`ingest.envelope.Envelope`, so the tests share the record format
with the receiver. Times are seconds after ``T0`` (2024-07-01 12:00:00 UTC).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import create_engine, text

from ingest.envelope import Envelope
from projections.app import Projector, create_app
from projections.pipeline import Fault
from projections.rebuild import topic_partitions
from tests.samples import SAMPLES
from wcs_audit.settings import Settings

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
NODE = "Qm7t2ZxV9kLp4RsA1bNc8DeFgH3jKwYu@203.0.113.10"
SESSION = "5b0f3c2a-8d41-4e7a-9c55-2f6e1a7b9d03"
SESSION2 = "0c0ffee0-0000-4000-8000-000000000002"
PUB = "6f1d2e30-3f1a-11ef-8a41-b5c3d2e1f0a9"
PLAYER = "7a2e3f40-3f1a-11ef-8a41-b5c3d2e1f0a9"
SNAPSHOT_LEG = "b1c2d3e4-3f1a-11ef-8a41-b5c3d2e1f0a9"
ORPHAN = "0aaaaaaa-3f1a-11ef-8a41-b5c3d2e1f0a9"
OUT_CALL = "8b3f4a50-3f1a-11ef-8a41-b5c3d2e1f0a9"
IN_CALL = "9c4a5b60-3f1a-11ef-8a41-b5c3d2e1f0a9"
OPERATION = "ad5b6c70-3f1a-11ef-8a41-b5c3d2e1f0a9"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(hook: str, **changes: Any) -> dict[str, Any]:
    """The sample body of ``hook`` with ``changes`` applied (a value of None deletes a key)."""
    body: dict[str, Any] = json.loads((SAMPLES / f"{hook}.json").read_text())
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@dataclass(frozen=True, slots=True)
class StoryEvent:
    """One hook of a story: ``seconds`` after T0, with a fixed event id."""

    hook: str
    body: dict[str, Any]
    seconds: float
    event_id: uuid.UUID

    def envelope(self) -> Envelope:
        received_us = T0_US + round(self.seconds * 1_000_000)
        return Envelope(
            event_id=self.event_id,
            hook=self.hook,
            received_at_us=received_us,
            remote_addr="203.0.113.10",
            node_id=self.body.get("nodeId"),
            session_id=self.body.get("sessionId"),
            value=json.dumps(self.body).encode(),
        )


@dataclass(frozen=True)
class Record:
    """What the projector reads of an aiokafka ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]


def story_event(index: int, hook: str, body: dict[str, Any], seconds: float) -> StoryEvent:
    return StoryEvent(hook, body, seconds, uuid.UUID(int=(0x0190 << 112) | index))


def _publisher_events() -> list[tuple[str, dict[str, Any], float]]:
    keepalive = sample("StreamKeepAliveEvent")
    events = [
        ("publishStream", sample("publishStream"), 3.0),
        ("StreamStatusEvent", sample("StreamStatusEvent"), 4.0),
    ]
    events += [("StreamKeepAliveEvent", keepalive, 14.0 + 10 * i) for i in range(11)]
    events += [
        ("unPublishStream", sample("unPublishStream"), 120.0),
        ("StreamStatusEvent", sample("StreamStatusEvent", status="UNPUBLISHED"), 120.5),
    ]
    return events


def _player_events() -> list[tuple[str, dict[str, Any], float]]:
    playing = sample(
        "StreamStatusEvent",
        mediaSessionId=PLAYER,
        published=False,
        status="PLAYING",
        mediaType="play",
        createDate=1719835210500,
    )
    keepalive = {**playing}
    events = [
        ("playStream", sample("playStream"), 10.0),
        ("StreamStatusEvent", playing, 11.0),
        ("snapshot", sample("snapshot"), 15.0),
    ]
    events += [("StreamKeepAliveEvent", keepalive, 21.0 + 10 * i) for i in range(9)]
    stopped = {**playing, "status": "STOPPED", "info": "Stopped by user"}
    events += [("stopStream", sample("stopStream"), 110.0), ("StreamStatusEvent", stopped, 110.5)]
    return events


def _call_events() -> list[tuple[str, dict[str, Any], float]]:
    established = sample("CallStatusEvent")
    ring = sample("CallStatusEvent", status="RING", sipStatus=180)
    finish = sample("CallStatusEvent", status="FINISH", info="Normal call clearing")
    hold = sample("CallStatusEvent", status="HOLD")
    busy = sample(
        "CallStatusEvent",
        callId=IN_CALL,
        incoming=True,
        caller="1004",
        callee="1001",
        visibleName="Bob",
        status="BUSY",
        sipStatus=486,
        info="Busy here",
    )
    return [
        ("call", sample("call"), 40.0),
        ("CallStatusEvent", ring, 41.0),
        ("CallStatusEvent", established, 43.0),
        ("sendDtmf", sample("sendDtmf"), 50.0),
        ("sendDtmf", sample("sendDtmf", dtmf="7"), 52.0),
        ("hold", sample("hold"), 55.0),
        ("CallStatusEvent", hold, 55.5),
        ("unhold", sample("unhold"), 65.0),
        ("CallStatusEvent", established, 65.5),
        ("transfer", sample("transfer"), 70.0),
        ("TransferStatusEvent", sample("TransferStatusEvent"), 71.0),
        ("hangup", sample("hangup"), 80.0),
        ("CallStatusEvent", finish, 80.5),
        ("OnCallEvent", sample("OnCallEvent"), 90.0),
        ("CallStatusEvent", busy, 92.0),
    ]


def _session_events() -> list[tuple[str, dict[str, Any], float]]:
    mystery = {"nodeId": NODE, "appKey": "defaultApp", "sessionId": SESSION, "foo": 1}
    disconnected = sample("ConnectionStatusEvent", status="DISCONNECTED", info="Normal disconnect")
    return [
        ("connect", sample("connect"), 0.0),
        ("ConnectionStatusEvent", sample("ConnectionStatusEvent"), 1.0),
        ("RegistrationStatusEvent", sample("RegistrationStatusEvent"), 2.0),
        ("OnDataEvent", sample("OnDataEvent"), 95.0),
        ("DataStatusEvent", sample("DataStatusEvent"), 95.2),
        ("sessionDebug", sample("sessionDebug"), 100.0),
        ("SessionDebugStatusEvent", sample("SessionDebugStatusEvent"), 100.1),
        ("pushLogs", sample("pushLogs"), 101.0),
        ("submitBugReport", sample("submitBugReport"), 102.0),
        ("BugReportStatusEvent", sample("BugReportStatusEvent"), 103.0),
        ("MysteryEvent", mystery, 105.0),
        ("ConnectionStatusEvent", disconnected, 130.0),
    ]


def _orphan_session_events() -> list[tuple[str, dict[str, Any], float]]:
    """A second session whose publisher goes silent after two keep-alives: nothing ends it."""
    ids = {"sessionId": SESSION2, "custom": {"userId": "user-78"}}
    leg = {"sessionId": SESSION2, "mediaSessionId": ORPHAN, "name": "orphan", "custom": None}
    publishing = sample("StreamStatusEvent", **leg)
    return [
        ("connect", sample("connect", **ids), 5.0),
        ("ConnectionStatusEvent", sample("ConnectionStatusEvent", **ids), 6.0),
        ("publishStream", sample("publishStream", **leg), 7.0),
        ("StreamStatusEvent", publishing, 8.0),
        ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent", **leg), 18.0),
        ("StreamKeepAliveEvent", sample("StreamKeepAliveEvent", **leg), 28.0),
    ]


def sample_story() -> list[StoryEvent]:
    """Both sessions' hooks in time order, each with a fixed event id."""
    timeline = (
        _session_events()
        + _publisher_events()
        + _player_events()
        + _call_events()
        + _orphan_session_events()
    )
    timeline.sort(key=lambda item: item[2])
    return [
        story_event(i, hook, copy.deepcopy(body), seconds)
        for i, (hook, body, seconds) in enumerate(timeline)
    ]


def shuffled_with_retries(events: Sequence[StoryEvent], seed: int) -> list[StoryEvent]:
    """Each session's events in a random order, every one followed by a retry 1 ms later."""
    rng = random.Random(seed)
    by_session: dict[str, list[StoryEvent]] = {}
    for event in events:
        by_session.setdefault(str(event.body.get("sessionId")), []).append(event)
    out: list[StoryEvent] = []
    for session_events in by_session.values():
        shuffled = list(session_events)
        rng.shuffle(shuffled)
        for event in shuffled:
            retry = replace(event, seconds=event.seconds + 0.001, event_id=uuid.uuid4())
            out += [event, retry]
    return out


async def produce(settings: Settings, envelopes: Iterable[Envelope]) -> None:
    """Sends ``envelopes`` to ``settings.topic`` in order, as the receiver would."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send(
                settings.topic, envelope.value, key=envelope.key, headers=envelope.headers()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def end_offsets(settings: Settings) -> dict[int, int]:
    """The end offset of every partition of ``settings.topic``."""
    tps = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


def stored_positions(settings: Settings) -> dict[int, int]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT partition, next_offset FROM projection_positions WHERE topic = :t"),
                {"t": settings.topic},
            )
            return {partition: offset for partition, offset in rows}
    finally:
        engine.dispose()


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], within: float = 60) -> None:
    """Polls ``condition`` until true; fails the test after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        outcome = condition()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def caught_up(settings: Settings, ends: dict[int, int]) -> bool:
    stored = stored_positions(settings)
    return all(stored.get(p, 0) >= end for p, end in ends.items() if end > 0)


async def project(settings: Settings, fault: Fault | None = None) -> Projector:
    """Runs the projector until it has applied everything in the topic, then stops it."""
    ends = await end_offsets(settings)
    projector = create_app(settings, fault)
    await projector.start()
    try:
        await wait_for(lambda: caught_up(settings, ends) or projector.state.error is not None)
    finally:
        await projector.stop()
    if fault is None and projector.state.error is not None:
        raise projector.state.error
    return projector


def table_rows(settings: Settings, table: str, order_by: str) -> list[dict[str, Any]]:
    """Every row of ``table`` (or view) as dicts, ordered by ``order_by``."""
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order_by}"))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


def by_key(rows: Iterable[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}
