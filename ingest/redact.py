"""Secret fields out of a JSON body, changing nothing else in its bytes.

WCS forwards SIP passwords (``sipPassword`` of ``connect`` and the status events) and clients put
auth tokens in ``custom``. The audit copy keeps the body byte for byte, so a secret's string value
is replaced in place; only when that cannot be done exactly (a non-string value, an escaped key)
is the body re-serialised.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import orjson

REDACTED = "[REDACTED]"


class Redactor:
    """Replaces the values of ``fields`` (exact key names, at any depth) with ``"[REDACTED]"``."""

    __slots__ = ("_quoted", "_string_values", "fields")

    def __init__(self, fields: Collection[str]) -> None:
        self.fields = frozenset(fields)
        names = b"|".join(re.escape(name.encode()) for name in sorted(self.fields))
        # WCS writes keys as plain ASCII; a body without any quoted field name has no secret
        # (one search for all names: a scan per name costs more)
        self._quoted = re.compile(b'"(?:' + names + b')"') if self.fields else None
        # a key token, then its string value; inside JSON strings every quote is escaped, so a
        # match cannot start or end within a string value
        self._string_values = re.compile(rb'"(' + names + rb')"(\s*:\s*)"(?:[^"\\]|\\.)*"')

    def redact(self, body: bytes, parsed: Any) -> tuple[bytes, list[str]]:
        """Returns ``body`` with secrets replaced, and the names found (empty: body unchanged).

        ``parsed`` is ``body`` already decoded. Fast path: no quoted field name in the bytes.
        """
        if self._quoted is None or self._quoted.search(body) is None:
            return body, []
        found = sorted({key for key, _ in secret_items(parsed, self.fields)})
        if not found:
            return body, []
        replacement = b'"\\1"\\2"' + REDACTED.encode() + b'"'
        redacted = self._string_values.sub(replacement, body)
        if all(value == REDACTED for _, value in secret_items(orjson.loads(redacted), self.fields)):
            return redacted, found
        return orjson.dumps(scrub(parsed, self.fields)), found

    def redact_raw(self, body: bytes) -> bytes:
        """Best effort for bytes that may not be JSON (rejected requests): string values only."""
        if not self.fields:
            return body
        return self._string_values.sub(b'"\\1"\\2"' + REDACTED.encode() + b'"', body)


def secret_items(value: Any, fields: frozenset[str]) -> list[tuple[str, Any]]:
    """``(key, value)`` for every key in ``fields`` anywhere in a decoded JSON value (not
    inside the value of such a key), in no particular order."""
    found: list[tuple[str, Any]] = []
    containers = [value] if isinstance(value, (dict, list)) else []
    while containers:
        container = containers.pop()
        if isinstance(container, list):
            containers += [item for item in container if isinstance(item, (dict, list))]
            continue
        for key, item in container.items():
            if key in fields:
                found.append((key, item))
            elif isinstance(item, (dict, list)):
                containers.append(item)
    return found


def scrub(value: Any, fields: frozenset[str]) -> Any:
    """A copy of a decoded JSON value with the values of ``fields`` replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if k in fields else scrub(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(item, fields) for item in value]
    return value
