"""The projector's lag as the benchmarks measure it, and percentiles of a series.

Two measures: :class:`LagSampler` polls, during the run, how far the newest stored hook is
behind the clock (progress, and when everything is stored); :func:`commit_lags` reads, after
the run, when each ``hook_log`` row was committed (PostgreSQL's commit timestamps) and gives
the lag of every hook exactly. The sampled figure only bounds the lag of one projector: with
several, the newest row stored by the fastest hides rows the others have not stored yet.
"""

from __future__ import annotations

import threading
import time

import psycopg

from wcs_audit.stack.postgres import libpq_conninfo

Sample = tuple[float, int, float | None]  # (wall time, hooks stored, lag in seconds)


# records applied: the stored positions of a topic produced from offset 0 (a count(*) of
# hook_log scanned the table, ~20 ms a sample here: a fifth of a core at 10 samples/s,
# taken from the pipeline it measured); the newest receive time: one step down its index
SAMPLE = """
SELECT (SELECT coalesce(sum(next_offset), 0) FROM projection_positions WHERE topic = %s),
       extract(epoch FROM (SELECT max(received_at) FROM hook_log))
"""


class LagSampler(threading.Thread):
    """Every ``interval_s``: the time, the count of hooks stored from ``topic`` (a fresh topic,
    one record per hook) and how far the newest stored ``received_at`` is behind the wall
    clock (an upper bound of the lag of every hook answered before it, while hooks keep
    coming)."""

    def __init__(self, database_url: str, topic: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.conninfo = libpq_conninfo(database_url, None)
        self.topic = topic
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self.stop.wait(self.interval_s):
                count, newest = conn.execute(SAMPLE, (self.topic,)).fetchone() or (0, None)
                now = time.time()
                self.samples.append(
                    (now, int(count), None if newest is None else now - float(newest))
                )

    def wait_for(self, total: int, timeout_s: float) -> float | None:
        """Seconds until ``total`` hooks are stored, or None on timeout."""
        started = time.time()
        while time.time() - started < timeout_s:
            if self.samples and self.samples[-1][1] >= total:
                return time.time() - started
            time.sleep(0.1)
        return None


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile of ``values`` (nearest rank), rounded; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


COMMIT_LAGS = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
       max(lag)
FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - received_at) AS lag
      FROM hook_log) AS lags
"""


def commit_lags(database_url: str) -> dict[str, float | int | None] | None:
    """Every stored hook's lag, from its ``received-at`` to the commit of the transaction that
    stored it (then visible): count, p50, p99 and max in seconds. None when the server does not
    record commit timestamps (``track_commit_timestamp``, on in the local stack)."""
    with psycopg.connect(libpq_conninfo(database_url, None), autocommit=True) as conn:
        setting = conn.execute("SHOW track_commit_timestamp").fetchone()
        if setting is None or setting[0] != "on":
            return None
        count, p50, p99, most = conn.execute(COMMIT_LAGS).fetchone() or (0, None, None, None)
    return {
        "hooks": count,
        "p50_s": None if p50 is None else round(p50, 3),
        "p99_s": None if p99 is None else round(p99, 3),
        "max_s": None if most is None else round(float(most), 3),
    }
