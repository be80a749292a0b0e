"""COPY text: escaping, and the hook_events fast path equals the generic row formatting."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from projections.decode import Event, JsonText, decode_record
from projections.rows import event_row
from projections.stage import (
    EVENT_COLUMNS,
    array_field,
    copy_text,
    escape,
    events_copy_text,
    formatter_of,
    json_field,
    time_field,
)
from projections.tables import hook_events
from tests.projections.story import Record, sample_story


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a\tb\nc\rd", "a\\tb\\nc\\rd"),
        ('{"sdp": "v=0\\r\\n"}', '{"sdp": "v=0\\\\r\\\\n"}'),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_field_formats() -> None:
    assert array_field(["WebRTC", 'a"b', "c\\d"]) == '{"WebRTC","a\\\\"b","c\\\\\\\\d"}'
    assert array_field(None) == "\\N"
    assert json_field(JsonText('{"a": 1}')) == '{"a": 1}'
    assert json_field({"a": "x\ny"}) == '{"a":"x\\\\ny"}'
    assert time_field(datetime(2024, 7, 1, 12, 0, 0, 1, tzinfo=UTC)) == (
        "2024-07-01T12:00:00.000001+00:00"
    )


def test_event_lines_equal_the_generic_row_format() -> None:
    events = []
    for n, story_event in enumerate(sample_story()):
        envelope = story_event.envelope()
        event = decode_record(Record("t", 1, n, envelope.value, envelope.headers()))
        assert isinstance(event, Event)
        events.append(event)
    retries = {events[3].event_id}
    formatters = [(name, formatter_of(hook_events.c[name])) for name in EVENT_COLUMNS]
    rows = [event_row(e, e.event_id in retries) for e in events]
    assert events_copy_text(events, retries) == copy_text(formatters, rows)
    assert set(EVENT_COLUMNS) == {c.name for c in hook_events.columns}
    assert b"\\\\r\\\\n" in events_copy_text(events, ())  # SDP line breaks stay JSON escapes
    assert json.loads(events[0].payload)["sipPassword"] == "[REDACTED]"
