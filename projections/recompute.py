"""Derived columns recomputed from stored history, and ends inferred from silence.

Some read-model columns depend on the order of events in time (holds, DTMF digits, which
status event follows which bug report) or on the absence of events (silence). They are
recomputed for the rows a batch touched, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

RECOUNT_SESSIONS = text("""
UPDATE sessions s SET
  streams_count = (SELECT count(*) FROM streams t
                   WHERE t.session_id = s.session_id AND t.node_id IS NOT DISTINCT FROM
                         nullif(s.node_id, '')),
  calls_count = (SELECT count(*) FROM calls c
                 WHERE c.session_id = s.session_id AND c.node_id IS NOT DISTINCT FROM
                       nullif(s.node_id, ''))
FROM unnest(CAST(:nodes AS text[]), CAST(:sessions AS text[])) AS k(node_id, session_id)
WHERE s.node_id = k.node_id AND s.session_id = k.session_id
""")


async def recount_sessions(conn: AsyncConnection, keys: Collection[tuple[str, str]]) -> None:
    """Recomputes ``streams_count`` and ``calls_count`` of the sessions ``keys``."""
    if keys:
        nodes, session_ids = zip(*sorted(keys), strict=True)
        await conn.execute(RECOUNT_SESSIONS, {"nodes": list(nodes), "sessions": list(session_ids)})


RECOMPUTE_CALL_HISTORY = text("""
WITH ids AS (SELECT unnest(CAST(:ids AS text[])) AS call_id),
statuses AS (
  SELECT call_id, status, received_at,
         lag(status) OVER w AS previous_status,
         lead(received_at) OVER w AS next_at
  FROM hook_log
  WHERE hook = 'CallStatusEvent' AND NOT suspected_retry AND call_id IN (SELECT call_id FROM ids)
  WINDOW w AS (PARTITION BY call_id ORDER BY received_at, event_id)
),
holds AS (
  SELECT call_id,
         count(*) FILTER (WHERE status = 'HOLD' AND previous_status IS DISTINCT FROM 'HOLD')
           AS hold_count,
         coalesce(sum(EXTRACT(EPOCH FROM next_at - received_at)) FILTER (WHERE status = 'HOLD'),
                  0) AS held_s
  FROM statuses GROUP BY call_id
),
digits AS (
  SELECT l.call_id, string_agg(p.payload->>'dtmf', '' ORDER BY l.received_at, l.event_id)
           AS dtmf_sent
  FROM hook_log l JOIN hook_payloads p USING (payload_id)
  WHERE l.hook = 'sendDtmf' AND NOT l.suspected_retry AND l.call_id IN (SELECT call_id FROM ids)
  GROUP BY l.call_id
)
UPDATE calls c SET
  hold_count = coalesce(h.hold_count, 0),
  held_s = coalesce(h.held_s, 0),
  dtmf_sent = d.dtmf_sent
FROM ids LEFT JOIN holds h USING (call_id) LEFT JOIN digits d USING (call_id)
WHERE c.call_id = ids.call_id
""")


async def recompute_call_history(conn: AsyncConnection, call_ids: Collection[str]) -> None:
    """Recomputes hold count, time held and DTMF digits of ``call_ids`` from ``hook_log``.

    Holds and digits depend on the order of events in time, so they are derived from the
    whole stored history of the call rather than merged incrementally.
    """
    if call_ids:
        await conn.execute(RECOMPUTE_CALL_HISTORY, {"ids": sorted(call_ids)})


PAIR_BUG_REPORTS = text("""
WITH keys AS (
  SELECT * FROM unnest(CAST(:nodes AS text[]), CAST(:sessions AS text[])) AS k(node_id, session_id)
),
pairs AS (
  SELECT DISTINCT ON (r.event_id) r.event_id, body.payload->>'filename' AS filename,
         s.received_at AS status_at
  FROM hook_log s
  JOIN hook_payloads body USING (payload_id)
  JOIN keys k ON s.session_id = k.session_id AND coalesce(s.node_id, '') = k.node_id
  JOIN LATERAL (
    SELECT b.event_id FROM bug_reports b
    WHERE b.session_id = s.session_id AND b.node_id IS NOT DISTINCT FROM s.node_id
    -- the latest report before the status; if receive jitter put the status first, the
    -- nearest report after it (so arrival order does not decide)
    ORDER BY b.submitted_at > s.received_at,
             abs(extract(epoch FROM s.received_at - b.submitted_at)), b.event_id DESC
    LIMIT 1
  ) r ON true
  WHERE s.hook = 'BugReportStatusEvent' AND NOT s.suspected_retry
  ORDER BY r.event_id, s.received_at, s.event_id
)
UPDATE bug_reports b SET filename = p.filename, status_at = p.status_at
FROM pairs p WHERE b.event_id = p.event_id
""")


async def pair_bug_reports(conn: AsyncConnection, keys: Collection[tuple[str, str]]) -> None:
    """Gives each bug report of the sessions ``keys`` the first status event that followed it
    (a status belongs to the latest report submitted before it)."""
    if keys:
        nodes, session_ids = zip(*sorted(keys), strict=True)
        await conn.execute(PAIR_BUG_REPORTS, {"nodes": list(nodes), "sessions": list(session_ids)})


# Rows another projector's transaction holds are skipped (SKIP LOCKED): it is writing them,
# so they are not silent, and waiting for them while it waits for a row this transaction
# wrote was a deadlock between two projectors of one group (the sweep covers every row, the
# batches only their own partitions' sessions).
CLOSE_SILENT_STREAMS = text("""
UPDATE streams SET
  inferred_end_at = last_seen_at,
  inferred_reason = CASE WHEN keepalive_count > 0
    THEN 'inferred: no keep-alive for ' || CAST(:keepalive_s AS text) || ' s'
    ELSE 'inferred: no event for ' || CAST(:silence_s AS text) || ' s' END
WHERE media_session_id IN (
  SELECT media_session_id FROM streams
  WHERE status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL
    AND last_seen_at < CAST(:now AS timestamptz)
                       - make_interval(secs => least(:keepalive_s, :silence_s))
    AND last_seen_at < CAST(:now AS timestamptz) - make_interval(
          secs => CASE WHEN keepalive_count > 0 THEN :keepalive_s ELSE :silence_s END)
  FOR UPDATE SKIP LOCKED)
""")

CLOSE_SILENT_SESSIONS = text("""
UPDATE sessions SET
  inferred_end_at = last_seen_at,
  inferred_reason = 'inferred: no event for ' || CAST(:silence_s AS text) || ' s'
WHERE (node_id, session_id) IN (
  SELECT node_id, session_id FROM sessions
  WHERE status_rank IS DISTINCT FROM 2 AND inferred_end_at IS NULL
    AND last_seen_at < CAST(:now AS timestamptz) - make_interval(secs => :silence_s)
  FOR UPDATE SKIP LOCKED)
""")


async def close_silent(
    conn: AsyncConnection, now: datetime, keepalive_s: float, stream_s: float, session_s: float
) -> None:
    """Ends streams and sessions silent for longer than their timeout at event time ``now``.

    The inferred end is the last event's time; :func:`merge_set` clears it again when a later
    event arrives. Using event time (not the wall clock) keeps a rebuild equal to the live run.
    """
    await conn.execute(
        CLOSE_SILENT_STREAMS,
        {"now": now, "keepalive_s": _seconds(keepalive_s), "silence_s": _seconds(stream_s)},
    )
    await conn.execute(CLOSE_SILENT_SESSIONS, {"now": now, "silence_s": _seconds(session_s)})


def _seconds(value: float) -> float | int:
    """Whole seconds print without ``.0`` in the inferred reason."""
    return int(value) if float(value).is_integer() else value
