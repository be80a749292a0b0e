"""Who may send hooks: source allow-list, HTTP Basic credentials, WCS's HMAC-MD5 body signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request was refused: HTTP status and a one-line reason."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Guard:
    """The checks configured; an empty guard lets everything through.

    ``hmac_key``: WCS's ``rest_hook_secret_key``; WCS sends ``Authorization: WCS <hex>`` with
    the HMAC-MD5 of the body (``rest_hook_send_hash=true``). ``basic``: ``user:password`` of the
    app's ``restUsername``/``restPassword``. ``allow``: CIDRs WCS may connect from.
    """

    hmac_key: bytes | None = None
    basic: bytes | None = None
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def of(cls, hmac_key: str | None, basic: str | None, allow: Sequence[str]) -> Guard:
        return cls(
            hmac_key=hmac_key.encode() if hmac_key else None,
            basic=base64.b64encode(basic.encode()) if basic else None,
            allow=tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allow),
        )

    def check_source(self, remote_addr: str) -> Denial | None:
        """Refuses a peer outside the allow-list (403)."""
        if not self.allow:
            return None
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            return Denial(403, f"source {remote_addr!r} is not an IP address")
        if any(address in network for network in self.allow):
            return None
        return Denial(403, f"source {remote_addr} is not in WCS_AUDIT_ALLOW_CIDRS")

    def check_credentials(self, authorization: Sequence[bytes], body: bytes) -> Denial | None:
        """Checks Basic credentials (401) and the body signature (403) among the
        ``Authorization`` header values; both must hold when both are configured."""
        if self.basic is not None and not any(
            hmac.compare_digest(value.strip(), b"Basic " + self.basic) for value in authorization
        ):
            return Denial(401, "missing or wrong HTTP Basic credentials")
        if self.hmac_key is not None:
            expected = b"WCS " + hmac.new(self.hmac_key, body, hashlib.md5).hexdigest().encode()
            if not any(
                hmac.compare_digest(value.strip().lower(), expected.lower())
                for value in authorization
            ):
                return Denial(
                    403, "missing or wrong WCS body signature (Authorization: WCS <hmac>)"
                )
        return None
