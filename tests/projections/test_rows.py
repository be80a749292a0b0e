"""Event -> partial rows: table-driven, pure."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from projections.decode import Event, JsonDocument, payload_id_of, redact_secrets
from projections.facts import facts_of
from projections.rows import (
    call_lifecycle,
    event_row,
    session_part,
    stream_lifecycle,
    stream_part,
    suspected_retries,
)
from tests.projections.story import OUT_CALL, at, sample

SECRETS = frozenset({"sipPassword", "authToken", "token", "password", "secret"})


def event(
    hook: str, body: dict[str, Any], seconds: float = 0, n: int = 1, digest: str = "h"
) -> Event:
    return Event(
        event_id=UUID(int=n),
        hook=hook,
        known=True,
        received_at=at(seconds),
        remote_addr=None,
        node_id=body.get("nodeId"),
        session_id=body.get("sessionId"),
        body=(redacted := redact_secrets(body)),
        body_hash=digest,
        partition=0,
        offset=n,
        payload=(payload := JsonDocument(json.dumps(redacted).encode())),
        payload_id=payload_id_of(payload),
        facts=facts_of(redacted),
    )


@pytest.mark.parametrize(
    ("hook", "changes", "expected"),
    [
        ("publishStream", {}, {"requested_at": at(0), "status": "PENDING", "status_rank": 0}),
        ("StreamStatusEvent", {}, {"status": "PUBLISHING", "status_rank": 1, "started_at": at(0)}),
        ("StreamStatusEvent", {"status": "FAILED", "info": "Failed by ICE error"},
         {"status": "FAILED", "status_rank": 2, "info": "Failed by ICE error"}),
        ("StreamStatusEvent", {"status": "PAUSED"}, {"status": "PAUSED", "status_rank": 1}),
        ("StreamKeepAliveEvent", {},
         {"keepalive_count": 1, "last_keepalive_at": at(0), "status": "PUBLISHING"}),
        ("unPublishStream", {}, {"stop_requested_at": at(0)}),
        ("snapshot", {}, {"snapshots_requested": 1}),
        ("pauseStream", {}, {}),
    ],
)  # fmt: skip
def test_stream_lifecycle(hook: str, changes: dict[str, Any], expected: dict[str, Any]) -> None:
    row = stream_lifecycle(event(hook, sample(hook, **changes)))
    assert {k: row.get(k) for k in expected} == expected
    if hook not in {"StreamStatusEvent", "StreamKeepAliveEvent", "publishStream"}:
        assert "status" not in row


@pytest.mark.parametrize(
    ("hook", "changes", "expected"),
    [
        ("call", {}, {"created_at": at(0), "status": "PENDING", "status_rank": 0}),
        ("OnCallEvent", {}, {"ring_at": at(0), "status": "RING", "sip_status": 180}),
        ("CallStatusEvent", {}, {"established_at": at(0), "status_rank": 1, "sip_status": 200}),
        ("CallStatusEvent", {"status": "BUSY"}, {"status_rank": 2, "established_at": None}),
        ("CallStatusEvent", {"status": "SESSION_PROGRESS"}, {"status_rank": 0, "ring_at": None}),
        ("CallStatusEvent", {"status": "HOLD"}, {"status_rank": 1}),
        ("TransferStatusEvent", {},
         {"transfer_status": "FAILED", "transfer_status_rank": 2,
          "transfer_info": "SIP 404 NOT FOUND"}),
        ("transfer", {}, {"transfers_requested": 1}),
        ("hangup", {}, {"hangup_at": at(0)}),
        ("hold", {}, {}),
    ],
)  # fmt: skip
def test_call_lifecycle(hook: str, changes: dict[str, Any], expected: dict[str, Any]) -> None:
    row = call_lifecycle(event(hook, sample(hook, **changes)))
    assert {k: row.get(k) for k in expected} == expected


def test_a_player_request_without_size_leaves_the_size_alone() -> None:
    row = stream_part(event("playStream", sample("playStream")))
    assert row is not None
    assert (row["role"], row["width"], row["height"]) == ("player", None, None)


def test_numbers_an_integer_column_cannot_hold_are_dropped() -> None:
    body = sample("StreamStatusEvent", width=2**31, height=-(2**31), createDate=10**20)
    row = stream_part(event("StreamStatusEvent", body))
    assert row is not None
    assert (row["width"], row["height"], row["created_at"]) == (None, -(2**31), None)


def test_session_columns_never_hold_secrets() -> None:
    row = session_part(event("connect", sample("connect")), SECRETS)
    assert row is not None
    assert row["custom"] == {"userId": "user-77"}
    assert "s3cret" not in repr(row)
    assert (row["connect_requested_at"], row["status"]) == (at(0), None)


def test_hook_event_row_carries_the_ids_found_in_the_body() -> None:
    row = event_row(event("CallStatusEvent", sample("CallStatusEvent")), suspected_retry=True)
    assert (row["call_id"], row["media_session_id"], row["status"]) == (
        OUT_CALL,
        None,
        "ESTABLISHED",
    )
    assert row["suspected_retry"] is True


WINDOW = timedelta(seconds=5)


@pytest.mark.parametrize(
    ("times", "prior", "retries"),
    [
        ([0, 0.001], [], {2}),  # a retry right after the original
        ([0, 10, 20], [], set()),  # keep-alives every 10 s repeat the same body
        ([0, 4.9, 9.8], [], {2, 3}),  # each copy is within 5 s of the one before
        ([3], [0], {1}),  # a copy already stored
        ([3], [-10], set()),
        ([0, 0], [], {2}),  # same time: only the later one in Kafka order
    ],
)
def test_suspected_retries(times: list[float], prior: list[float], retries: set[int]) -> None:
    events = [event("hold", sample("hold"), t, n) for n, t in enumerate(times, start=1)]
    found = suspected_retries(events, {"h": [at(t) for t in prior]}, WINDOW)
    assert found == {UUID(int=n) for n in retries}
