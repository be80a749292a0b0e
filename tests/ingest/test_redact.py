"""Redaction replaces secret values and keeps every other byte."""

from __future__ import annotations

import orjson

from ingest.redact import REDACTED, Redactor

REDACTOR = Redactor(("sipPassword", "token"))


def redact(body: bytes) -> tuple[bytes, list[str]]:
    return REDACTOR.redact(body, orjson.loads(body))


def test_body_without_secrets_is_returned_as_is() -> None:
    body = b'{"a": 1,  "b": "sipPassword"}'
    redacted, found = redact(body)
    assert redacted is body
    assert found == []


def test_string_values_are_replaced_in_place_at_any_depth() -> None:
    body = b'{"sipPassword" :  "p\\"w",\n "custom": {"token": "abc", "x": [ {"token":"d"} ]}}'
    redacted, found = redact(body)
    assert found == ["sipPassword", "token"]
    assert redacted == (
        b'{"sipPassword" :  "[REDACTED]",\n "custom": {"token": "[REDACTED]",'
        b' "x": [ {"token":"[REDACTED]"} ]}}'
    )


def test_a_lookalike_inside_a_string_value_is_left_alone() -> None:
    body = b'{"note": "send \\"token\\": \\"x\\" please", "token": "t"}'
    redacted, _ = redact(body)
    assert orjson.loads(redacted) == {"note": 'send "token": "x" please', "token": REDACTED}


def test_non_string_secret_falls_back_to_reserialising() -> None:
    body = b'{"token": {"jwt": "abc"}, "n": 1}'
    redacted, found = redact(body)
    assert found == ["token"]
    assert orjson.loads(redacted) == {"token": REDACTED, "n": 1}


def test_raw_bytes_of_rejected_requests_are_redacted_best_effort() -> None:
    assert REDACTOR.redact_raw(b'{"sipPassword": "s3cret", broken') == (
        b'{"sipPassword": "[REDACTED]", broken'
    )
