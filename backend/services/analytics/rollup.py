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

from backend.clock import MAX_PAST
from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.attribution import campaign_day_params
from backend.services.analytics.window import day_start

#: Ingestion accepts events up to MAX_PAST old; one more day for the clock's sake.
STALE_CHECK_DAYS = MAX_PAST.days + 1

#: A closed day's rows are deleted, then inserted again (queries.sql) with the very
#: statements the live answers use (``daily_page_stats``, ``daily_quest_stats``,
#: ``live_campaigns``), so rolling up never changes an answer.
DELETE_DAY = ("delete_day_pages", "delete_day_categories", "delete_day_quests",
              "delete_day_campaigns")
#: Today's closed hour, likewise (event counts and quest figures add up over hours).
HOUR_STATEMENTS = ("delete_hour_categories", "delete_hour_quests", "insert_hourly_categories",
                   "insert_hourly_quests", "mark_hour")
#: Hours of past days are never read (those days come from the daily rollups).
FORGET_PAST_HOURS = ("forget_past_hour_categories", "forget_past_hour_quests",
                     "forget_past_hours")


def hours_to_roll(conn: psycopg.Connection[Any], *, now: datetime) -> list[datetime]:
    """Today's closed hours (UTC) that need (re)computing."""
    today_start = day_start(now.date())
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    rows = fetch_all(conn, QUERIES["hours_to_roll"], {"today_start": today_start,
                                                      "current_hour": current_hour})
    return [row["hour"] for row in rows]


def roll_up_hour(conn: psycopg.Connection[Any], hour: datetime) -> None:
    """Replace one closed hour's rows (event counts, quest figures) in one transaction."""
    params = {"hour": hour, "lo": hour, "hi": hour + timedelta(hours=1),
              "now": hour + timedelta(hours=1)}
    with conn.transaction(), conn.cursor() as cur:
        for name in HOUR_STATEMENTS:
            cur.execute(QUERIES[name], params)


def forget_past_hours(conn: psycopg.Connection[Any], *, now: datetime) -> None:
    """Drop hourly rows of days before today (one transaction)."""
    with conn.transaction(), conn.cursor() as cur:
        for name in FORGET_PAST_HOURS:
            cur.execute(QUERIES[name], {"today_start": day_start(now.date())})


def days_to_roll(conn: psycopg.Connection[Any], *, now: datetime,
                 lookback_days: int) -> list[date]:
    """Closed days (before today, UTC) within the lookback that need (re)computing."""
    today = now.date()
    first_day = today - timedelta(days=lookback_days)
    start = fetch_all(conn, QUERIES["first_day"])
    if start and start[0]["day"] is not None:
        first_day = max(first_day, start[0]["day"])
    rows = fetch_all(conn, QUERIES["days_to_roll"], {
        "first_day": first_day, "today": today,
        "stale_from": today - timedelta(days=STALE_CHECK_DAYS)})
    return [row["day"] for row in rows]


def roll_up_day(conn: psycopg.Connection[Any], day: date) -> int:
    """Replace one closed day's rollup rows in one transaction; returns page rows written."""
    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    params = {"day": day, "lo": lo, "hi": hi, "now": hi}
    with conn.transaction(), conn.cursor() as cur:
        for name in DELETE_DAY:
            cur.execute(QUERIES[name], params)
        cur.execute(QUERIES["insert_pages"], params)
        pages = cur.rowcount
        cur.execute(QUERIES["insert_categories"], params)
        cur.execute(QUERIES["insert_quests"], params)
        cur.execute(QUERIES["insert_campaigns"], campaign_day_params(day))
        cur.execute(QUERIES["mark_day"], params)
        return pages
