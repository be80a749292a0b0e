"""What a WCS body says, read once per distinct body (pure, no I/O).

Most rows take the same few values from a body: its app, leg, call, operation, status and
``createDate``, and for a stream body its descriptive columns. A leg's keep-alives, most of
the traffic, repeat byte for byte every interval, and ``projections.decode.BodyCache`` hands
out one decoded body per distinct record value: reading these values there, once, saves the
projector reading them again for every event and every row that needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT32 = range(-(2**31), 2**31)


def text_of(body: Mapping[str, Any], name: str) -> str | None:
    """``body[name]`` if it is a non-empty string, else None."""
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def int_of(body: Mapping[str, Any], name: str, zero_is_none: bool = False) -> int | None:
    """``body[name]`` if it is an integer an ``integer`` column can hold, else None."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value not in INT32:
        return None
    return None if zero_is_none and value == 0 else value


def bool_of(body: Mapping[str, Any], name: str) -> bool | None:
    """``body[name]`` if it is a JSON boolean, else None."""
    value = body.get(name)
    return value if isinstance(value, bool) else None


def from_millis(millis: Any) -> datetime | None:
    """UTC datetime of WCS's ``createDate`` (ms epoch); None when absent, not a number or
    outside the years 1..9999 (one odd body must not stop the projector)."""
    if isinstance(millis, bool) or not isinstance(millis, int | float):
        return None
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except (OverflowError, ValueError):
        return None


def stream_attrs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive columns of a stream body (a size of 0 means "not known yet")."""
    published = bool_of(body, "published")
    return {
        "name": text_of(body, "name"),
        "role": None if published is None else ("publisher" if published else "player"),
        "media_provider": text_of(body, "mediaProvider"),
        "audio_codec": text_of(body, "audioCodec"),
        "video_codec": text_of(body, "videoCodec"),
        "width": int_of(body, "width", zero_is_none=True),
        "height": int_of(body, "height", zero_is_none=True),
        "record": bool_of(body, "record"),
    }


class BodyFacts(NamedTuple):
    """The values of a body most rows need. Shared by every event of the same record value:
    ``stream`` must not be changed (copy it)."""

    app: str | None
    media_session_id: str | None
    call_id: str | None
    operation_id: str | None
    status: str | None
    created_at: datetime | None
    stream: Mapping[str, Any]  # stream_attrs (a row takes them only for a body naming a leg)


def facts_of(body: Mapping[str, Any]) -> BodyFacts:
    """The :class:`BodyFacts` of ``body``."""
    return BodyFacts(
        app=text_of(body, "appKey"),
        media_session_id=text_of(body, "mediaSessionId"),
        call_id=text_of(body, "callId"),
        operation_id=text_of(body, "operationId"),
        status=text_of(body, "status"),
        created_at=from_millis(body.get("createDate")),
        stream=stream_attrs(body),
    )
