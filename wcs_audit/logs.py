"""Structured logs: one JSON object per line on stderr, event name in ``event``.

Log calls name an event and pass fields in ``extra``:
``logger.info("ingest.spool.drained", extra={"records": n})``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

CLIENT_LOG_INTERVAL_S = 30.0


class OncePerInterval(logging.Filter):
    """Lets each message template through once per ``interval_s``, with the count it held back.

    While Kafka is away aiokafka logs the same connection error many times a second; the
    receiver's own ``ingest.kafka.unavailable`` event already says so once.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[object, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        last, held = self._last.get(record.msg, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._last[record.msg] = (last, held + 1)
            return False
        self._last[record.msg] = (now, 0)
        if held:
            record.suppressed = held
        return True


def configure_logging(level: str) -> None:
    """Routes the root logger to stderr as JSON lines at ``level``; safe to call again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "message": "event",
            },
            timestamp=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    kafka_client = logging.getLogger("aiokafka")
    kafka_client.setLevel(max(root.level, logging.WARNING))
    kafka_client.filters[:] = [OncePerInterval(CLIENT_LOG_INTERVAL_S)]
