"""The daily rollups: page views, events per category, quest and campaign figures per UTC day.

``rollup_days`` lists the days whose rows are complete (``campaigns``: the campaign rows
too, migration 0072). A closed day is (re)computed when it is not listed yet (or listed
without campaign rows), or — within ``STALE_CHECK_DAYS`` of today, the span in
which ingestion accepts back-dated events — when an event for it was received after it
was computed. Each day is replaced in one short transaction with the very SQL the
live answers use, so rolling up never changes an answer. The job starts from the first
rolled-up day (on its first run, from the first event's day). After back-filling older
events with SQL, delete their days from ``rollup_days`` (or empty it, to start again
from the first event) and run the job again.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.attribution import INSERT_CAMPAIGNS_SQL, campaign_day_params
from backend.services.analytics.pages import DAILY_PAGE_STATS_SQL
from backend.services.analytics.quests import DAILY_QUEST_STATS_SQL
from backend.services.analytics.window import day_start

#: Ingestion accepts events up to 31 days old; one more day for the clock's sake.
STALE_CHECK_DAYS = 32

#: Closed days in ``[first_day, today)`` not rolled up yet, or rolled up before an event
#: for them was received (checked from ``stale_from`` on; with a margin for writers whose
#: transactions were still open when the day was computed). Only events received since
#: the oldest such computation are read, through the BRIN index on ``received_at``.
DAYS_TO_ROLL_SQL = """
WITH rolled AS (
    SELECT day, computed_at FROM public.rollup_days
    WHERE day >= %(stale_from)s::date AND day < %(today)s::date
), late AS (
    SELECT DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.received_at
    FROM public.user_activity_events e
    WHERE e.received_at > (SELECT min(computed_at) - interval '5 minutes' FROM rolled)
      AND e.occurred_at >= (%(stale_from)s::date::timestamp AT TIME ZONE 'UTC')
      AND e.occurred_at < (%(today)s::date::timestamp AT TIME ZONE 'UTC')
)
SELECT d::date AS day
FROM generate_series(%(first_day)s::date, %(today)s::date - 1, interval '1 day') AS d
LEFT JOIN public.rollup_days r ON r.day = d::date
WHERE r.day IS NULL OR NOT r.campaigns
   OR EXISTS (SELECT 1 FROM late l JOIN rolled ro USING (day)
              WHERE l.day = d::date AND l.received_at > ro.computed_at - interval '5 minutes')
ORDER BY 1
"""

#: Where to start looking: the first rolled-up day, or (first run) the first event's day.
FIRST_DAY_SQL = """
SELECT coalesce((SELECT min(day) FROM public.rollup_days),
                (SELECT (min(occurred_at) AT TIME ZONE 'UTC')::date
                 FROM public.user_activity_events)) AS day
"""

DELETE_DAY_SQL = (
    "DELETE FROM public.page_view_analytics WHERE day = %(day)s",
    "DELETE FROM public.event_category_daily WHERE day = %(day)s",
    "DELETE FROM public.quest_daily WHERE day = %(day)s",
    "DELETE FROM public.campaign_daily WHERE day = %(day)s",
)

INSERT_PAGES_SQL = """
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

INSERT_CATEGORIES_SQL = """
INSERT INTO public.event_category_daily (day, event_category, events)
SELECT %(day)s, event_category, count(*)
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s
GROUP BY event_category
"""

INSERT_QUESTS_SQL = """
INSERT INTO public.quest_daily (day, quest_id, quest_title, views, starts, completions)
SELECT day, quest_id, quest_title, views, starts, completions
FROM (""" + DAILY_QUEST_STATS_SQL + ") stats"  # noqa: S608 - constant SQL fragments only

MARK_DAY_SQL = """
INSERT INTO public.rollup_days (day, computed_at, campaigns) VALUES (%(day)s, now(), true)
ON CONFLICT (day) DO UPDATE SET computed_at = EXCLUDED.computed_at, campaigns = true
"""


#: Today's closed hours not rolled up yet, or rolled up before an event for them arrived.
HOURS_TO_ROLL_SQL = """
WITH rolled AS (
    SELECT hour, computed_at FROM public.rollup_hours
    WHERE hour >= %(today_start)s AND hour < %(current_hour)s
), late AS (
    SELECT DISTINCT date_trunc('hour', e.occurred_at, 'UTC') AS hour, e.received_at
    FROM public.user_activity_events e
    WHERE e.received_at > (SELECT min(computed_at) - interval '5 minutes' FROM rolled)
      AND e.occurred_at >= %(today_start)s AND e.occurred_at < %(current_hour)s
)
SELECT h AS hour
FROM generate_series(%(today_start)s::timestamptz, %(current_hour)s::timestamptz
                     - interval '1 hour', interval '1 hour') AS h
LEFT JOIN rolled r ON r.hour = h
WHERE r.hour IS NULL
   OR EXISTS (SELECT 1 FROM late l WHERE l.hour = h
              AND l.received_at > r.computed_at - interval '5 minutes')
ORDER BY 1
"""

DELETE_HOUR_SQL = (
    "DELETE FROM public.event_category_hourly WHERE hour = %(hour)s",
    "DELETE FROM public.quest_hourly WHERE hour = %(hour)s",
)

INSERT_HOURLY_CATEGORIES_SQL = """
INSERT INTO public.event_category_hourly (hour, event_category, events)
SELECT %(hour)s, event_category, count(*)
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s
GROUP BY event_category
"""

INSERT_HOURLY_QUESTS_SQL = """
INSERT INTO public.quest_hourly (hour, quest_id, quest_title, views, starts, completions)
SELECT %(hour)s, quest_id, quest_title, views, starts, completions
FROM (""" + DAILY_QUEST_STATS_SQL + ") stats"  # noqa: S608 - constant SQL fragments only

MARK_HOUR_SQL = """
INSERT INTO public.rollup_hours (hour, computed_at) VALUES (%(hour)s, now())
ON CONFLICT (hour) DO UPDATE SET computed_at = EXCLUDED.computed_at
"""

#: Hours of past days are never read (those days come from the daily rollups).
FORGET_PAST_HOURS_SQL = (
    "DELETE FROM public.event_category_hourly WHERE hour < %(today_start)s",
    "DELETE FROM public.quest_hourly WHERE hour < %(today_start)s",
    "DELETE FROM public.rollup_hours WHERE hour < %(today_start)s",
)


def hours_to_roll(conn: psycopg.Connection[Any], *, now: datetime) -> list[datetime]:
    """Today's closed hours (UTC) that need (re)computing."""
    today_start = day_start(now.date())
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    rows = fetch_all(conn, HOURS_TO_ROLL_SQL, {"today_start": today_start,
                                               "current_hour": current_hour})
    return [row["hour"] for row in rows]


def roll_up_hour(conn: psycopg.Connection[Any], hour: datetime) -> None:
    """Replace one closed hour's rows (event counts, quest figures) in one transaction."""
    params = {"hour": hour, "lo": hour, "hi": hour + timedelta(hours=1),
              "now": hour + timedelta(hours=1)}
    with conn.transaction(), conn.cursor() as cur:
        for statement in DELETE_HOUR_SQL:
            cur.execute(statement, params)
        cur.execute(INSERT_HOURLY_CATEGORIES_SQL, params)
        cur.execute(INSERT_HOURLY_QUESTS_SQL, params)
        cur.execute(MARK_HOUR_SQL, params)


def forget_past_hours(conn: psycopg.Connection[Any], *, now: datetime) -> None:
    """Drop hourly rows of days before today (one transaction)."""
    with conn.transaction(), conn.cursor() as cur:
        for statement in FORGET_PAST_HOURS_SQL:
            cur.execute(statement, {"today_start": day_start(now.date())})


def days_to_roll(conn: psycopg.Connection[Any], *, now: datetime,
                 lookback_days: int) -> list[date]:
    """Closed days (before today, UTC) within the lookback that need (re)computing."""
    today = now.date()
    first_day = today - timedelta(days=lookback_days)
    start = fetch_all(conn, FIRST_DAY_SQL)
    if start and start[0]["day"] is not None:
        first_day = max(first_day, start[0]["day"])
    rows = fetch_all(conn, DAYS_TO_ROLL_SQL, {
        "first_day": first_day, "today": today,
        "stale_from": today - timedelta(days=STALE_CHECK_DAYS)})
    return [row["day"] for row in rows]


def roll_up_day(conn: psycopg.Connection[Any], day: date) -> int:
    """Replace one closed day's rollup rows in one transaction; returns page rows written."""
    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    params = {"day": day, "lo": lo, "hi": hi, "now": hi}
    with conn.transaction(), conn.cursor() as cur:
        for statement in DELETE_DAY_SQL:
            cur.execute(statement, params)
        cur.execute(INSERT_PAGES_SQL, params)
        pages = cur.rowcount
        cur.execute(INSERT_CATEGORIES_SQL, params)
        cur.execute(INSERT_QUESTS_SQL, params)
        cur.execute(INSERT_CAMPAIGNS_SQL, campaign_day_params(day))
        cur.execute(MARK_DAY_SQL, params)
        return pages
