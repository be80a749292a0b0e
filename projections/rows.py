"""Event -> rows of the read models (pure, no I/O).

Each event contributes *partial* rows (see ``projections.merge``): the row of ``hook_log``,
and for the domain tables the columns this hook knows about. The consumer folds the partial
rows of a batch and merges them into PostgreSQL by the same rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from projections.decode import Event, drop_secrets
from projections.facts import bool_of, int_of, text_of
from projections.merge import Model, Row, status_group

SESSIONS = Model(
    key=("node_id", "session_id"),
    keep=("app",),
    first=("first_seen_at", "connect_requested_at", "connected_at"),
    last=("last_seen_at",),
    statuses=(
        status_group(extra=("info",)),
        status_group("registration_"),
        status_group("debug_"),
    ),
    attrs=(
        "client_version",
        "client_os_version",
        "client_browser_version",
        "media_providers",
        "custom",
        "sip_login",
        "sip_domain",
    ),
)
STREAMS = Model(
    key=("media_session_id",),
    keep=("node_id", "session_id", "app"),
    first=("first_seen_at", "created_at", "requested_at", "stop_requested_at", "started_at"),
    last=("last_seen_at", "last_keepalive_at"),
    sums=("keepalive_count", "snapshots_requested"),
    statuses=(status_group(extra=("info",)),),
    attrs=(
        "name",
        "role",
        "media_provider",
        "audio_codec",
        "video_codec",
        "width",
        "height",
        "record",
    ),
)
CALLS = Model(
    key=("call_id",),
    keep=("node_id", "session_id", "app"),
    first=("first_seen_at", "created_at", "ring_at", "established_at", "hangup_at"),
    last=("last_seen_at",),
    sums=("transfers_requested",),
    statuses=(
        status_group(extra=("info", "sip_status")),
        status_group("transfer_", extra=("transfer_info",)),
    ),
    attrs=("direction", "caller", "callee", "visible_name", "media_provider", "transfer_target"),
)
DATA_MESSAGES = Model(
    key=("operation_id",),
    keep=("node_id", "session_id", "app"),
    first=("sent_at",),
    statuses=(status_group(extra=("info",)),),
    attrs=("payload",),
)

STREAM_HOOKS = frozenset({
    "publishStream", "playStream", "unPublishStream", "stopStream", "pauseStream", "snapshot",
    "StreamStatusEvent", "StreamKeepAliveEvent",
})  # fmt: skip
CALL_HOOKS = frozenset({
    "call", "answer", "hold", "unhold", "transfer", "hangup", "sendDtmf",
    "OnCallEvent", "CallStatusEvent", "TransferStatusEvent",
})  # fmt: skip
STREAM_TERMINAL = frozenset({"UNPUBLISHED", "STOPPED", "FAILED"})
STREAM_ACTIVE = frozenset({"PUBLISHING", "PLAYING"})
CALL_TERMINAL = frozenset({"FINISH", "FAILED", "BUSY"})
CALL_EARLY = frozenset({"PENDING", "NEW", "TRYING", "RING", "RING_MEDIA", "SESSION_PROGRESS"})
CALL_RINGING = frozenset({"RING", "RING_MEDIA"})
TRANSFER_TERMINAL = frozenset({"COMPLETED", "FAILED"})
SESSION_TERMINAL = frozenset({"FAILED", "DISCONNECTED"})


def status_of(event: Event) -> str | None:
    """The ``status`` field of the body, if it is a non-empty string."""
    return event.facts.status


def event_row(event: Event, suspected_retry: bool) -> Row:
    """The ``hook_log`` row of ``event``."""
    facts = event.facts
    return {
        "event_id": event.event_id,
        "hook": event.hook,
        "known": event.known,
        "received_at": event.received_at,
        "node_id": event.node_id,
        "app": facts.app,
        "session_id": event.session_id,
        "media_session_id": facts.media_session_id,
        "call_id": facts.call_id,
        "operation_id": facts.operation_id,
        "status": facts.status,
        "remote_addr": event.remote_addr,
        "payload_id": event.payload_id,
        "body_hash": event.body_hash,
        "suspected_retry": suspected_retry,
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
    }


def suspected_retries(
    events: Sequence[Event], prior: Mapping[str, Sequence[datetime]], window: timedelta
) -> set[UUID]:
    """Ids of events whose hook+body hash was already seen within ``window`` of them.

    ``prior`` maps body hashes to the receive times of copies already stored; ``events`` are
    taken in Kafka order, each one also compared with the events before it. Only a copy that
    comes later in Kafka order is a suspected retry, so exactly one copy stays unmarked.
    """
    seen: dict[str, list[datetime]] = defaultdict(list)
    for body_hash, times in prior.items():
        seen[body_hash].extend(times)
    retries: set[UUID] = set()
    for event in events:
        times = seen[event.body_hash]
        if any(abs(event.received_at - t) <= window for t in times):
            retries.add(event.event_id)
        times.append(event.received_at)
    return retries


def _status(rank: int, event: Event, status: str, prefix: str = "") -> Row:
    return {
        f"{prefix}status": status,
        f"{prefix}status_rank": rank,
        f"{prefix}status_at": event.received_at,
        f"{prefix}status_event": event.event_id,
    }


def session_part(event: Event, secret_fields: Collection[str]) -> Row | None:
    """The session's partial row; None when the event names no session."""
    if event.session_id is None:
        return None
    body, at = event.body, event.received_at
    row = SESSIONS.empty({"node_id": event.node_id or "", "session_id": event.session_id})
    row.update(app=event.facts.app, first_seen_at=at, last_seen_at=at)
    if event.hook in {"connect", "ConnectionStatusEvent", "RegistrationStatusEvent"}:
        custom = body.get("custom")
        providers = body.get("mediaProviders")
        row.update(
            client_version=text_of(body, "clientVersion"),
            client_os_version=text_of(body, "clientOSVersion"),
            client_browser_version=text_of(body, "clientBrowserVersion"),
            media_providers=[str(p) for p in providers] if isinstance(providers, list) else None,
            custom=drop_secrets(custom, secret_fields) if isinstance(custom, dict) else None,
            sip_login=text_of(body, "sipLogin"),
            sip_domain=text_of(body, "sipDomain"),
            attrs_at=at,
        )
    status = status_of(event)
    if event.hook == "connect":
        row["connect_requested_at"] = at
    elif event.hook == "ConnectionStatusEvent" and status:
        row.update(_status(2 if status in SESSION_TERMINAL else 1, event, status))
        row["info"] = text_of(body, "info")
        if status == "ESTABLISHED":
            row["connected_at"] = at
    elif event.hook == "RegistrationStatusEvent" and status:
        row.update(_status(1, event, status, "registration_"))
    elif event.hook == "sessionDebug" and text_of(body, "command"):
        row.update(_status(1, event, str(body["command"]), "debug_"))
    elif event.hook == "SessionDebugStatusEvent" and status:
        row.update(_status(1, event, status, "debug_"))
    return row


def stream_part(event: Event) -> Row | None:
    """The stream leg's partial row; None unless a stream hook names a mediaSessionId."""
    facts, at = event.facts, event.received_at
    if event.hook not in STREAM_HOOKS or facts.media_session_id is None:
        return None
    row = STREAMS.empty({"media_session_id": facts.media_session_id})
    row.update(
        node_id=event.node_id,
        session_id=event.session_id,
        app=facts.app,
        first_seen_at=at,
        last_seen_at=at,
        created_at=facts.created_at,
        attrs_at=at,
    )
    row.update(facts.stream)
    row.update(stream_lifecycle(event))
    return row


def stream_lifecycle(event: Event) -> Row:
    """Times, counters and status a stream hook sets (see the module docstring of merge)."""
    hook, at, status = event.hook, event.received_at, status_of(event)
    if hook in {"publishStream", "playStream"}:
        return {"requested_at": at, **_status(0, event, "PENDING")}
    if hook in {"unPublishStream", "stopStream"}:
        return {"stop_requested_at": at}
    if hook == "snapshot":
        return {"snapshots_requested": 1}
    if hook == "StreamKeepAliveEvent":
        row: Row = {"keepalive_count": 1, "last_keepalive_at": at, "started_at": at}
        return row | _status(1, event, status) if status else row
    if hook == "StreamStatusEvent" and status:
        rank = 2 if status in STREAM_TERMINAL else 1
        row = {**_status(rank, event, status), "info": text_of(event.body, "info")}
        if status in STREAM_ACTIVE:
            row["started_at"] = at
        return row
    return {}


def call_part(event: Event) -> Row | None:
    """The call's partial row; None unless a call hook names a callId."""
    body, at = event.body, event.received_at
    call_id = event.facts.call_id
    if event.hook not in CALL_HOOKS or call_id is None:
        return None
    row = CALLS.empty({"call_id": call_id})
    incoming = bool_of(body, "incoming")
    row.update(
        node_id=event.node_id,
        session_id=event.session_id,
        app=event.facts.app,
        first_seen_at=at,
        last_seen_at=at,
        direction=None if incoming is None else ("incoming" if incoming else "outgoing"),
        caller=text_of(body, "caller"),
        callee=text_of(body, "callee"),
        visible_name=text_of(body, "visibleName"),
        media_provider=text_of(body, "mediaProvider"),
        transfer_target=text_of(body, "target"),
        attrs_at=at,
    )
    row.update(call_lifecycle(event))
    return row


def call_lifecycle(event: Event) -> Row:
    """Times, counters and statuses a call hook sets."""
    hook, at, status, body = event.hook, event.received_at, status_of(event), event.body
    if hook in {"call", "OnCallEvent"}:
        row: Row = {"created_at": at}
        if status:
            row |= _status(0, event, status) | {"sip_status": int_of(body, "sipStatus")}
            row |= {"ring_at": at} if status in CALL_RINGING else {}
        return row
    if hook == "hangup":
        return {"hangup_at": at}
    if hook == "transfer":
        return {"transfers_requested": 1}
    if hook == "TransferStatusEvent" and status:
        rank = 2 if status in TRANSFER_TERMINAL else 1
        return _status(rank, event, status, "transfer_") | {"transfer_info": text_of(body, "info")}
    if hook == "CallStatusEvent" and status:
        rank = 2 if status in CALL_TERMINAL else 0 if status in CALL_EARLY else 1
        row = _status(rank, event, status) | {
            "info": text_of(body, "info"),
            "sip_status": int_of(body, "sipStatus"),
        }
        row |= {"ring_at": at} if status in CALL_RINGING else {}
        row |= {"established_at": at} if status == "ESTABLISHED" else {}
        return row
    return {}


def data_part(event: Event, secret_fields: Collection[str]) -> Row | None:
    """The data message's partial row (``OnDataEvent`` / ``DataStatusEvent``)."""
    body, at = event.body, event.received_at
    operation_id = event.facts.operation_id
    if event.hook not in {"OnDataEvent", "DataStatusEvent"} or operation_id is None:
        return None
    row = DATA_MESSAGES.empty({"operation_id": operation_id})
    row.update(node_id=event.node_id, session_id=event.session_id, app=event.facts.app)
    status = status_of(event)
    if event.hook == "OnDataEvent":
        row.update(sent_at=at, payload=drop_secrets(body.get("payload"), secret_fields))
        row["attrs_at"] = at
    elif status:
        row.update(_status(2, event, status) | {"info": text_of(body, "info")})
    return row
