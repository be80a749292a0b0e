"""Decoding the record format of ``ingest.envelope`` (schema 1)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest

from ingest.envelope import Envelope
from projections.decode import (
    DEFAULT_SECRETS,
    BodyCache,
    Event,
    Rejected,
    decode_record,
    drop_secrets,
    from_micros,
    redact_secrets,
)
from projections.facts import from_millis
from tests.projections.story import NODE, SESSION, T0, Record, sample
from tests.samples import SAMPLES

EVENT_ID = UUID("01900000-0000-7000-8000-000000000001")


def record_of(
    body: dict[str, Any], hook: str = "connect", header_changes: dict[str, bytes] | None = None
) -> Record:
    envelope = Envelope(
        event_id=EVENT_ID,
        hook=hook,
        received_at_us=1_719_835_200_000_001,
        remote_addr="203.0.113.10",
        node_id=body.get("nodeId"),
        session_id=body.get("sessionId"),
        value=json.dumps(body).encode(),
    )
    headers = dict(envelope.headers()) | (header_changes or {})
    return Record("t", 2, 41, envelope.value, [(k, v) for k, v in headers.items() if v])


def test_a_record_decodes_into_an_event_with_secrets_redacted() -> None:
    event = decode_record(record_of(sample("connect")))
    assert isinstance(event, Event)
    assert (event.event_id, event.hook, event.known) == (EVENT_ID, "connect", True)
    assert event.received_at == from_micros(1_719_835_200_000_001)
    assert (event.node_id, event.session_id, event.partition, event.offset) == (
        NODE,
        SESSION,
        2,
        41,
    )
    assert event.body["sipPassword"] == "[REDACTED]"
    assert event.body["custom"] == {"token": "[REDACTED]", "userId": "user-77"}


@pytest.mark.parametrize(
    ("value", "headers", "error"),
    [
        (b"not json", {}, "value is not JSON"),
        (b"[1, 2]", {}, "value is not a JSON object"),
        (None, {}, "record has no value"),
        (b"{}", {"schema": b"2"}, "unsupported schema '2'"),
        (b"{}", {"event-id": b""}, "missing header 'event-id'"),
        (b"{}", {"event-id": b"nope"}, "bad header"),
        (b"{}", {"received-at": b"soon"}, "bad header"),
    ],
)
def test_broken_records_are_rejected_with_a_reason(
    value: bytes | None, headers: dict[str, bytes], error: str
) -> None:
    record = record_of({}, header_changes=headers)
    rejected = decode_record(Record(record.topic, 0, 7, value, record.headers))
    assert isinstance(rejected, Rejected)
    assert rejected.error.startswith(error)
    assert (rejected.partition, rejected.offset, rejected.value) == (0, 7, value)


def test_unknown_hooks_are_events_marked_unknown() -> None:
    event = decode_record(record_of({"sessionId": "s"}, hook="RecordingStatusEvent"))
    assert isinstance(event, Event)
    assert (event.hook, event.known, event.node_id) == ("RecordingStatusEvent", False, None)


def test_time_conversions_are_exact() -> None:
    assert from_micros(1_719_835_200_000_001).microsecond == 1
    assert from_millis(1719835200120) == T0.replace(microsecond=120_000)
    assert from_millis("1719835200120") is None
    assert from_millis(True) is None


@pytest.mark.parametrize(
    ("value", "redacted", "dropped"),
    [
        ({"token": "x", "a": 1}, {"token": "[REDACTED]", "a": 1}, {"a": 1}),
        ({"c": {"password": "p"}}, {"c": {"password": "[REDACTED]"}}, {"c": {}}),
        ([{"secret": 1}, 2], [{"secret": "[REDACTED]"}, 2], [{}, 2]),
        ("token", "token", "token"),
    ],
)
def test_secret_fields_at_any_depth(value: Any, redacted: Any, dropped: Any) -> None:
    assert redact_secrets(value) == redacted
    assert drop_secrets(value) == dropped
    assert DEFAULT_SECRETS.occur_in(value) == (value != redacted)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (b'{"custom": {"a": [1, {"b": "password"}]}}', False),  # the name only as a value
        (b'{"custom": {"a": [1, {"passwords": 2}]}}', False),  # a longer key
        (b'{"custom": {"a": [1, {"password": 2}]}}', True),
        (b'{"custom": {"a": [1, {"pass\\u0077ord": 2}]}}', True),
        (b'{"custom": {"x": "\\u0041", "token": 1}}', True),
        (b'{"custom": {"x": "\\u0041"}, "n": [1]}', False),
    ],
)
def test_secrets_in_nested_bodies_are_found_with_or_without_escapes(
    text: bytes, secret: bool
) -> None:
    assert DEFAULT_SECRETS.occur_in_body(json.loads(text), text) is secret


def test_a_secret_key_spelled_with_escapes_is_redacted_in_the_stored_payload() -> None:
    raw = b'{"sessionId": "s", "custom": [{"\\u0074oken": "t0p", "n": [1, {}]}]}'
    envelope = Envelope(
        event_id=EVENT_ID,
        hook="connect",
        received_at_us=1,
        remote_addr="203.0.113.10",
        node_id=NODE,
        session_id="s",
        value=raw,
    )
    event = decode_record(Record("t", 0, 0, raw, envelope.headers()))
    assert isinstance(event, Event)
    assert json.loads(event.payload)["custom"][0]["token"] == "[REDACTED]"
    assert event.payload.find(b"t0p") == -1


def test_nul_characters_are_replaced_because_postgresql_cannot_store_them() -> None:
    body = {"sessionId": "s", "name": "a\u0000b", "custom": {"k\u0000": ["\u0000"]}}
    event = decode_record(record_of(body, hook="publishStream"))
    assert isinstance(event, Event)
    assert event.body["name"] == "a\ufffdb"
    assert event.body["custom"] == {"k\ufffd": ["\ufffd"]}
    assert event.payload.find(b"\\u0000") == -1


def test_out_of_range_times_do_not_stop_decoding() -> None:
    assert from_millis(10**20) is None
    rejected = decode_record(record_of({}, header_changes={"received-at": b"9" * 30}))
    assert isinstance(rejected, Rejected)
    assert rejected.error.startswith("bad header")


SAMPLE_HOOKS = sorted(p.stem for p in SAMPLES.glob("*.json"))


@pytest.mark.parametrize("hook", SAMPLE_HOOKS)
def test_a_body_decoded_from_the_cache_is_the_one_decoded_afresh(hook: str) -> None:
    record = record_of(sample(hook), hook=hook)
    bodies = BodyCache()
    first, again = decode_record(record, bodies=bodies), decode_record(record, bodies=bodies)
    assert isinstance(first, Event)
    assert isinstance(again, Event)
    assert again == first == decode_record(record)  # secrets redacted either way
    assert again.body is first.body  # the second came from the cache


def test_the_cache_keys_on_the_exact_bytes_and_starts_afresh_when_full() -> None:
    bodies = BodyCache(limit=2)
    values = [b'{"sessionId": "s", "n": %d}' % n for n in (1, 2, 3)]
    for value in values:
        decode_record(replace(record_of({}), value=value), bodies=bodies)
    assert bodies.get(values[2]) is not None  # the third started a fresh cache
    assert bodies.get(values[0]) is None
    spaced = b'{"sessionId": "s", "n":  3}'
    assert bodies.get(spaced) is None  # same JSON, other bytes: decoded afresh
    event = decode_record(replace(record_of({}), value=spaced), bodies=bodies)
    assert isinstance(event, Event)
    assert event.payload == spaced
