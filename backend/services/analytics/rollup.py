"""The page-view rollup: one row per (closed UTC day, page) in ``page_view_analytics``.

A day is (re)computed when it has no rows yet or when events for it were received
after it was computed (late, back-dated events: ``occurred_at`` may be up to 31 days
old), within ``lookback_days``. Each day is replaced in its own short transaction with
the same SQL the live answer uses, so rolling up never changes an answer.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.pages import DAILY_PAGE_STATS_SQL
from backend.services.analytics.window import day_start

#: Closed days in ``[first_day, today)`` that have page events but no rollup rows, or
#: rollup rows older than an event received for that day (with a margin for writers whose
#: transactions were still open when the day was computed).
DAYS_TO_ROLL_SQL = """
WITH bounds AS (
    SELECT greatest(%(first_day)s::date,
                    (SELECT (min(occurred_at) AT TIME ZONE 'UTC')::date
                     FROM public.user_activity_events WHERE event_type = 'page_view')) AS lo
), candidates AS (
    SELECT d::date AS day
    FROM bounds, generate_series(bounds.lo, %(today)s::date - 1, interval '1 day') AS d
), rolled AS (
    SELECT day, min(computed_at) AS computed_at
    FROM public.page_view_analytics WHERE day >= %(first_day)s GROUP BY day
)
SELECT c.day FROM candidates c LEFT JOIN rolled r USING (day)
WHERE r.day IS NULL
   OR EXISTS (SELECT 1 FROM public.user_activity_events e
              WHERE e.event_type IN ('page_view', 'page_exit')
                AND e.occurred_at >= (c.day::timestamp AT TIME ZONE 'UTC')
                AND e.occurred_at < ((c.day + 1)::timestamp AT TIME ZONE 'UTC')
                AND e.received_at > r.computed_at - interval '5 minutes')
ORDER BY c.day
"""

DELETE_DAY_SQL = "DELETE FROM public.page_view_analytics WHERE day = %(day)s"

INSERT_DAY_SQL = """
INSERT INTO public.page_view_analytics (
    day, page_path, total_views, unique_visitors, bounce_rate, avg_load_time_ms,
    avg_time_on_page_ms, computed_at, sessions_entered, bounces, load_time_samples,
    load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms)
SELECT day, page_path, total_views, unique_visitors,
       CASE WHEN sessions_entered > 0 THEN bounces::float8 / sessions_entered END,
       CASE WHEN load_time_samples > 0 THEN load_time_sum_ms::float8 / load_time_samples END,
       CASE WHEN time_on_page_samples > 0
            THEN time_on_page_sum_ms::float8 / time_on_page_samples END,
       now(), sessions_entered, bounces, load_time_samples, load_time_sum_ms,
       time_on_page_samples, time_on_page_sum_ms
FROM (""" + DAILY_PAGE_STATS_SQL + ") stats"  # noqa: S608 - constant SQL fragments only


def days_to_roll(conn: psycopg.Connection[Any], *, now: datetime,
                 lookback_days: int) -> list[date]:
    """Closed days (before today, UTC) within the lookback that need (re)computing."""
    today = now.date()
    rows = fetch_all(conn, DAYS_TO_ROLL_SQL, {
        "first_day": today - timedelta(days=lookback_days), "today": today})
    return [row["day"] for row in rows]


def roll_up_day(conn: psycopg.Connection[Any], day: date) -> int:
    """Replace the rollup rows of one closed day in one transaction; returns pages written."""
    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(DELETE_DAY_SQL, {"day": day})
        cur.execute(INSERT_DAY_SQL, {"lo": lo, "hi": hi, "now": hi})
        return cur.rowcount
