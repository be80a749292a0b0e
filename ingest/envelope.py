"""The record wcs-audit writes to Kafka for each hook: the contract between ingest and projections.

Record format, schema version 1 (``docs/record-format.md`` is the operator's copy):

- **value**: the HTTP request body exactly as WCS sent it, except that the values of secret
  fields (``WCS_AUDIT_SECRET_FIELDS``) are replaced by ``"[REDACTED]"``.
- **key**: the WCS ``sessionId`` (UTF-8), or ``nodeId`` when there is none, or no key.
- **headers** (ASCII values):

  =================  ===============================================================
  ``schema``         ``1``
  ``event-id``       UUIDv7 minted at receipt: unique and time-ordered
  ``hook``           hook name, the last segment of the request path
  ``hook-known``     ``1`` for the hooks of the WCS reference, ``0`` for other names
  ``received-at``    server clock at receipt, microseconds since the Unix epoch
  ``remote-addr``    IP address of the HTTP peer
  ``node-id``        WCS ``nodeId`` of the body (absent when the body has none)
  ``body-hash``      SHA-256 hex of ``hook`` + ``"\\n"`` + value; with time, spots WCS retries
  ``redacted``       comma-separated names of the fields redacted (absent when none)
  =================  ===============================================================
"""

from __future__ import annotations

import hashlib
import random as _random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

SCHEMA_VERSION = 1

KNOWN_HOOKS = frozenset({
    "connect", "ConnectionStatusEvent", "RegistrationStatusEvent",
    "playStream", "pauseStream", "stopStream", "publishStream", "unPublishStream", "snapshot",
    "StreamStatusEvent", "StreamKeepAliveEvent",
    "call", "sendDtmf", "answer", "hold", "unhold", "transfer", "hangup",
    "OnCallEvent", "CallStatusEvent", "TransferStatusEvent",
    "OnDataEvent", "DataStatusEvent",
    "submitBugReport", "BugReportStatusEvent", "pushLogs", "sessionDebug",
    "SessionDebugStatusEvent",
})  # fmt: skip

Headers = list[tuple[str, bytes]]


def uuid7_int(now_us: int, random_bits: Callable[[int], int] = _random.getrandbits) -> int:
    """The 128-bit value of a UUIDv7 (RFC 9562) for ``now_us``: 48-bit milliseconds, then
    sub-millisecond bits in ``rand_a`` (RFC 9562 §6.2 method 3) so ids of one process sort by
    receipt to ~0.25 µs.

    The 62 random bits make ids unique, not secret: a fast PRNG (seeded from the OS) serves.
    """
    millis, micros = divmod(now_us, 1000)
    sub_ms = micros * 4096 // 1000
    return (millis << 80) | (0x7 << 76) | (sub_ms << 64) | (0b10 << 62) | random_bits(62)


def uuid7(now_us: int, random_bits: Callable[[int], int] = _random.getrandbits) -> UUID:
    """A UUIDv7 for ``now_us`` (see :func:`uuid7_int`)."""
    return UUID(int=uuid7_int(now_us, random_bits))


def uuid_text(value: int) -> bytes:
    """The canonical text of a 128-bit UUID value, ASCII: what ``str(UUID(int=value))`` gives,
    without building the ``UUID``."""
    digits = b"%032x" % value
    return b"-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))


def body_hash(hook: str, value: bytes) -> str:
    """SHA-256 hex of ``hook`` + newline + record value: equal for a retried hook."""
    return hashlib.sha256(hook.encode() + b"\n" + value).hexdigest()


SCHEMA_HEADER = ("schema", str(SCHEMA_VERSION).encode())
KNOWN_HEADER = ("hook-known", b"1")
UNKNOWN_HEADER = ("hook-known", b"0")


def record_key(session_id: str | None, node_id: str | None) -> bytes | None:
    """Partition key: all hooks of one WCS session share a partition, so keep their order."""
    key = session_id or node_id
    return key.encode() if key else None


def record_headers(
    event_id: bytes,
    hook: str,
    *,
    received_at_us: int,
    remote_addr: str,
    node_id: str | None,
    value: bytes,
    redacted: Sequence[str] = (),
) -> Headers:
    """The Kafka headers of schema version 1 (see the module docstring); ``event_id`` is the
    UUID's text."""
    headers: Headers = [
        SCHEMA_HEADER,
        ("event-id", event_id),
        ("hook", hook.encode()),
        KNOWN_HEADER if hook in KNOWN_HOOKS else UNKNOWN_HEADER,
        ("received-at", b"%d" % received_at_us),
        ("remote-addr", remote_addr.encode()),
        ("body-hash", body_hash(hook, value).encode()),
    ]
    if node_id is not None:
        headers.append(("node-id", node_id.encode()))
    if redacted:
        headers.append(("redacted", ",".join(redacted).encode()))
    return headers


@dataclass(frozen=True, slots=True)
class Envelope:
    """One accepted hook, ready for Kafka. ``value`` is the (redacted) request body."""

    event_id: UUID
    hook: str
    received_at_us: int
    remote_addr: str
    node_id: str | None
    session_id: str | None
    value: bytes
    redacted: Sequence[str] = ()

    @property
    def key(self) -> bytes | None:
        """Partition key: all hooks of one WCS session share a partition, so keep their order."""
        return record_key(self.session_id, self.node_id)

    def headers(self) -> Headers:
        """The Kafka headers of schema version 1 (see the module docstring)."""
        return record_headers(
            str(self.event_id).encode(),
            self.hook,
            received_at_us=self.received_at_us,
            remote_addr=self.remote_addr,
            node_id=self.node_id,
            value=self.value,
            redacted=self.redacted,
        )
