"""Streaks: runs of consecutive active UTC days (an active day has any event of the user).

The current streak is alive while its last day is today or yesterday (a student who
has not yet been active today has not broken it); otherwise it is 0.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from backend.db import fetch_one

#: Current and longest streak and active-day count of one user over all their events ≤ now.
STREAKS_SQL = """
WITH days AS (
    SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at <= %(now)s
), runs AS (
    SELECT max(day) AS last_day, count(*) AS length
    FROM (SELECT day, day - (row_number() OVER (ORDER BY day))::int AS island FROM days) d
    GROUP BY island
)
SELECT coalesce(max(length), 0) AS longest_streak,
       coalesce(max(length) FILTER (WHERE last_day >= %(today)s::date - 1), 0) AS current_streak,
       coalesce(sum(length), 0) AS active_days_total
FROM runs
"""


def streaks(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime) -> dict[str, int]:
    """The user's current and longest streak (days) and all-time active days."""
    today: date = now.astimezone(UTC).date()
    row = fetch_one(conn, STREAKS_SQL, {"user_id": user_id, "now": now, "today": today}) or {}
    return {"current_streak": int(row.get("current_streak", 0)),
            "longest_streak": int(row.get("longest_streak", 0)),
            "active_days_total": int(row.get("active_days_total", 0))}
