"""The keep-alive fast path gives exactly the rows of the generic per-event fold."""

from __future__ import annotations

import json
import random
from typing import Any
from uuid import UUID

import pytest

from projections.batch import BatchRows
from projections.decode import Event, JsonText
from projections.keepalives import add_keepalive_parts
from projections.merge import fold
from projections.rows import SESSIONS, STREAMS, session_part, stream_part
from tests.projections.story import ORPHAN, PLAYER, PUB, SESSION2, at, sample


def keepalive(n: int, seconds: float, **changes: Any) -> Event:
    body = sample("StreamKeepAliveEvent", **changes)
    return Event(
        event_id=UUID(int=n),
        hook="StreamKeepAliveEvent",
        known=True,
        received_at=at(seconds),
        remote_addr=None,
        node_id=body.get("nodeId"),
        session_id=body.get("sessionId"),
        body=body,
        body_hash="h",
        partition=0,
        offset=n,
        payload=JsonText(json.dumps(body)),
    )


def keepalives() -> list[Event]:
    events = [keepalive(n, 14 + 10 * n) for n in range(5)]  # the publisher
    events += [  # a player whose first keep-alive does not know its size yet
        keepalive(10, 21, mediaSessionId=PLAYER, published=False, width=0, height=0),
        keepalive(11, 31, mediaSessionId=PLAYER, published=False, width=640, height=None),
        keepalive(12, 41, mediaSessionId=PLAYER, published=False, width=0, createDate=1),
        keepalive(13, 41, mediaSessionId=PLAYER, published=False, width=0, status="PAUSED"),
    ]
    events += [keepalive(20, 18, sessionId=SESSION2, mediaSessionId=ORPHAN, name="orphan")]
    events += [keepalive(30, 19, mediaSessionId=None)]  # no leg: only the session
    return events


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_equals_the_generic_fold(seed: int) -> None:
    events = keepalives()
    random.Random(seed).shuffle(events)
    rows = BatchRows()
    add_keepalive_parts(events, rows)

    generic_streams = [r for e in events if (r := stream_part(e)) is not None]
    generic_sessions = [r for e in events if (r := session_part(e, ())) is not None]
    by_leg = {r["media_session_id"]: r for r in fold(STREAMS, rows.streams)}
    assert by_leg == {r["media_session_id"]: r for r in fold(STREAMS, generic_streams)}
    by_session = {r["session_id"]: r for r in fold(SESSIONS, rows.sessions)}
    assert by_session == {r["session_id"]: r for r in fold(SESSIONS, generic_sessions)}
    assert set(by_leg) == {PUB, PLAYER, ORPHAN}
    assert (by_leg[PUB]["keepalive_count"], by_leg[PLAYER]["keepalive_count"]) == (5, 4)
    assert (by_leg[PLAYER]["width"], by_leg[PLAYER]["status"]) == (640, "PAUSED")
    assert len(rows.count_sessions) == 2
