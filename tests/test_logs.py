"""Log lines are JSON; a chatty client library is thinned out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from wcs_audit.logs import OncePerInterval, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, client = logging.getLogger(), logging.getLogger("aiokafka")
    saved = (root.handlers[:], root.level, client.filters[:], client.level)
    yield
    root.handlers[:], root.level, client.filters[:], client.level = saved


@pytest.mark.usefixtures("restore_logging")
def test_lines_are_json_with_event_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("ingest.test").info("ingest.test.happened", extra={"records": 3})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "ingest.test.happened"
    assert line["records"] == 3
    assert line["level"] == "INFO"


def test_repeats_are_held_back_and_counted() -> None:
    now = [0.0]
    limiter = OncePerInterval(30.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord(
            "aiokafka", logging.ERROR, "x", 1, "Unable connect to %s", ("n",), None
        )

    assert limiter.filter(record())
    assert not limiter.filter(record())
    assert not limiter.filter(record())
    now[0] = 31.0
    passed = record()
    assert limiter.filter(passed)
    assert passed.suppressed == 2  # type: ignore[attr-defined]
