"""Analytics views over the read models; applied only by migrations (``0003_views``).

Each tuple is one version of the views: a migration applies the version it names, so a later
change adds ``VIEWS_V2`` and a new migration instead of editing one that has run. Times are
UTC; a leg that has not ended counts until its last event (``last_seen_at``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class View:
    name: str
    select: str

    @property
    def create(self) -> str:
        return f"CREATE VIEW {self.name} AS\n{self.select}"

    @property
    def drop(self) -> str:
        return f"DROP VIEW IF EXISTS {self.name}"


CONCURRENT_STREAMS_PER_MINUTE = View(
    "concurrent_streams_per_minute",
    """
WITH legs AS (
  SELECT role, started_at, coalesce(ended_at, last_seen_at) AS until
  FROM streams WHERE started_at IS NOT NULL AND role IS NOT NULL
),
minutes AS (
  SELECT generate_series(date_trunc('minute', min(started_at)), date_trunc('minute', max(until)),
                         interval '1 minute') AS minute
  FROM legs
)
SELECT m.minute,
       count(l.role) FILTER (WHERE l.role = 'publisher') AS publishers,
       count(l.role) FILTER (WHERE l.role = 'player') AS players
FROM minutes m
LEFT JOIN legs l ON l.started_at < m.minute + interval '1 minute' AND l.until >= m.minute
GROUP BY m.minute
""",
)

STREAM_VIEWERS = View(
    "stream_viewers",
    """
WITH players AS (
  SELECT name, started_at, coalesce(ended_at, last_seen_at) AS until
  FROM streams WHERE role = 'player' AND started_at IS NOT NULL AND name IS NOT NULL
),
changes AS (
  SELECT name, started_at AS at, 1 AS delta FROM players
  UNION ALL
  SELECT name, until, -1 FROM players
),
running AS (
  SELECT name, sum(delta) OVER (PARTITION BY name ORDER BY at, delta
                                ROWS UNBOUNDED PRECEDING) AS viewers
  FROM changes
)
SELECT r.name, max(r.viewers) AS peak_viewers, t.total_viewers
FROM running r
JOIN (SELECT name, count(*) AS total_viewers FROM players GROUP BY name) t USING (name)
GROUP BY r.name, t.total_viewers
""",
)

USAGE_MINUTES_PER_APP_DAY = View(
    "usage_minutes_per_app_day",
    """
WITH legs AS (
  SELECT app, role, (started_at AT TIME ZONE 'UTC')::date AS day,
         coalesce(duration_s, EXTRACT(EPOCH FROM last_seen_at - started_at)) AS seconds
  FROM streams WHERE started_at IS NOT NULL
)
SELECT app, day,
       round(coalesce(sum(seconds) FILTER (WHERE role = 'publisher'), 0) / 60, 2)
         AS published_minutes,
       round(coalesce(sum(seconds) FILTER (WHERE role = 'player'), 0) / 60, 2)
         AS played_minutes
FROM legs
GROUP BY app, day
""",
)

BUCKETS = """
  SELECT * FROM (VALUES ('0-1 min', 0, 60), ('1-5 min', 60, 300), ('5-15 min', 300, 900),
                        ('15-60 min', 900, 3600), ('1 h+', 3600, NULL))
    AS b(bucket, lower_s, upper_s)
"""

SESSION_DURATION_DISTRIBUTION = View(
    "session_duration_distribution",
    f"""
WITH buckets AS ({BUCKETS})
SELECT b.bucket, b.lower_s, b.upper_s, count(s.duration_s) AS sessions
FROM buckets b
LEFT JOIN sessions s
  ON s.duration_s >= b.lower_s AND (b.upper_s IS NULL OR s.duration_s < b.upper_s)
GROUP BY b.bucket, b.lower_s, b.upper_s
""",  # noqa: S608  # constant text, no input
)

CALL_DURATION_DISTRIBUTION = View(
    "call_duration_distribution",
    f"""
WITH buckets AS ({BUCKETS})
SELECT b.bucket, b.lower_s, b.upper_s, count(c.talk_duration_s) AS calls
FROM buckets b
LEFT JOIN calls c
  ON c.talk_duration_s >= b.lower_s AND (b.upper_s IS NULL OR c.talk_duration_s < b.upper_s)
GROUP BY b.bucket, b.lower_s, b.upper_s
""",  # noqa: S608  # constant text, no input
)

CALL_OUTCOMES = View(
    "call_outcomes",
    """
SELECT outcome, count(*) AS calls
FROM (
  SELECT CASE WHEN established_at IS NOT NULL THEN 'answered'
              WHEN status = 'BUSY' THEN 'busy'
              WHEN status = 'FAILED' THEN 'failed'
              WHEN status_rank = 2 THEN 'not answered'
              ELSE 'in progress' END AS outcome
  FROM calls
) c
GROUP BY outcome
""",
)

STREAM_END_REASONS = View(
    "stream_end_reasons",
    """
SELECT role, end_status, coalesce(end_info, '') AS end_info, count(*) AS streams
FROM streams WHERE end_status IS NOT NULL
GROUP BY role, end_status, coalesce(end_info, '')
""",
)

BUG_REPORTS_PER_DAY = View(
    "bug_reports_per_day",
    """
SELECT app, (submitted_at AT TIME ZONE 'UTC')::date AS day, count(*) AS reports
FROM bug_reports
GROUP BY app, (submitted_at AT TIME ZONE 'UTC')::date
""",
)

STREAM_DETAIL_RECORDS = View(
    "stream_detail_records",
    """
WITH legs AS (
  SELECT s.*,
         CASE WHEN s.role = 'publisher' THEN (
           SELECT count(*) FROM streams p
           WHERE p.role = 'player' AND p.name = s.name
             AND p.started_at BETWEEN s.started_at AND s.ended_at
         ) ELSE 0 END AS subscriber_count
  FROM streams s
  WHERE s.started_at IS NOT NULL AND s.ended_at IS NOT NULL
),
fields AS (
  SELECT media_session_id, ended_at,
         to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS start,
         coalesce(media_provider, '') AS media_provider,
         coalesce(name, '') AS name,
         to_char(make_interval(secs => floor(duration_s)), 'HH24:MI:SS') AS duration,
         end_status AS disposition,
         coalesce(end_info, '') AS info,
         CASE WHEN role = 'publisher' THEN 'PUBLISH' ELSE 'SUBSCRIBE' END AS type,
         subscriber_count AS subscribers
  FROM legs
)
SELECT start, media_provider, name, media_session_id, duration, disposition, info, type,
       subscribers, ended_at,
       concat_ws(';', start, media_provider, name, media_session_id, duration, disposition,
                 info, type, subscribers) || ';' AS line
FROM fields
""",
)

VIEWS_V1 = (
    CONCURRENT_STREAMS_PER_MINUTE,
    STREAM_VIEWERS,
    USAGE_MINUTES_PER_APP_DAY,
    SESSION_DURATION_DISTRIBUTION,
    CALL_DURATION_DISTRIBUTION,
    CALL_OUTCOMES,
    STREAM_END_REASONS,
    BUG_REPORTS_PER_DAY,
    STREAM_DETAIL_RECORDS,
)

# The audit log as one relation again: ``hook_events`` was a table until migration 0007 moved
# its bodies to ``hook_payloads``; this view keeps its columns, in their order, for every
# query written against it (``payload_id`` added last). A LEFT JOIN: a hook whose payload
# was deleted by hand still shows, with a NULL payload; and PostgreSQL drops the join from
# a query that reads no ``payload``.
HOOK_EVENTS = View(
    "hook_events",
    """
SELECT l.event_id, l.hook, l.known, l.received_at, l.node_id, l.app, l.session_id,
       l.media_session_id, l.call_id, l.operation_id, l.status, l.remote_addr, p.payload,
       l.body_hash, l.suspected_retry, l.kafka_partition, l.kafka_offset, l.payload_id
FROM hook_log l LEFT JOIN hook_payloads p ON p.payload_id = l.payload_id
""",
)
