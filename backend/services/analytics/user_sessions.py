"""Sessions as the risk score sees them, so engagement and risk never disagree.

A session is a run of one user's events with gaps of at most ``gap`` (30 minutes by
default, ``RiskParams.session_gap_minutes``); it lasts from its first event to the end
of its last (``occurred_at`` plus ``duration_ms``, e.g. a page exit's time on page).
"""

from __future__ import annotations

#: Sessions of one user between ``since`` (exclusive, NULL: from the beginning) and ``now``.
#: Yields one row per session: ``started_at``, ``seconds``.
USER_SESSIONS_CTE = """
user_events AS (
    SELECT occurred_at, duration_ms,
           lag(occurred_at) OVER (ORDER BY occurred_at) AS prev_at
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at <= %(now)s
      AND (%(since)s::timestamptz IS NULL OR occurred_at > %(since)s::timestamptz)
), numbered AS (
    SELECT occurred_at, duration_ms,
           count(*) FILTER (WHERE prev_at IS NULL OR occurred_at - prev_at > %(gap)s)
               OVER (ORDER BY occurred_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
               AS session_no
    FROM user_events
), user_sessions AS (
    SELECT min(occurred_at) AS started_at,
           extract(epoch FROM max(occurred_at + coalesce(duration_ms, 0) * interval '1 ms')
                              - min(occurred_at))::float8 AS seconds
    FROM numbered GROUP BY session_no
)
"""
