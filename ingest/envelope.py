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


def uuid7(now_us: int, random_bits: Callable[[int], int] = _random.getrandbits) -> UUID:
    """A UUIDv7 (RFC 9562) for ``now_us``: 48-bit milliseconds, then sub-millisecond bits in
    ``rand_a`` (RFC 9562 §6.2 method 3) so ids of one process sort by receipt to ~0.25 µs.

    The 62 random bits make ids unique, not secret: a fast PRNG (seeded from the OS) serves.
    """
    millis, micros = divmod(now_us, 1000)
    sub_ms = micros * 4096 // 1000
    value = (millis << 80) | (0x7 << 76) | (sub_ms << 64) | (0b10 << 62) | random_bits(62)
    return UUID(int=value)


def body_hash(hook: str, value: bytes) -> str:
    """SHA-256 hex of ``hook`` + newline + record value: equal for a retried hook."""
    return hashlib.sha256(hook.encode() + b"\n" + value).hexdigest()


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
        key = self.session_id or self.node_id
        return key.encode() if key else None

    def headers(self) -> Headers:
        """The Kafka headers of schema version 1 (see the module docstring)."""
        headers: Headers = [
            ("schema", str(SCHEMA_VERSION).encode()),
            ("event-id", str(self.event_id).encode()),
            ("hook", self.hook.encode()),
            ("hook-known", b"1" if self.hook in KNOWN_HOOKS else b"0"),
            ("received-at", str(self.received_at_us).encode()),
            ("remote-addr", self.remote_addr.encode()),
            ("body-hash", body_hash(self.hook, self.value).encode()),
        ]
        if self.node_id is not None:
            headers.append(("node-id", self.node_id.encode()))
        if self.redacted:
            headers.append(("redacted", ",".join(self.redacted).encode()))
        return headers
