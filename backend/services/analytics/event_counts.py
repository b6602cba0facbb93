"""Event counts by category: what kinds of activity happen (a student sees their own).

``event_counts`` covers calendar days (``daily.py``): for everyone (an admin) closed
days come from ``event_category_daily``; for one user, or a caller whose rows RLS
filters, everything is counted live from events (the (user_id, time) index).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.daily import calendar_days, live_ranges, rolled_days
from backend.services.analytics.hourly import split_today
from backend.services.analytics.window import day_start
from backend.taxonomy import CATEGORIES

#: Counts per category for ``lo <= occurred_at < hi`` and ``<= now``; ``user_ids`` NULL
#: means every row RLS lets through (an explicit list lets the (user_id, time) index work).
EVENT_COUNTS_SQL = """
SELECT event_category AS category, count(*) AS events
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
  AND (%(user_ids)s::uuid[] IS NULL OR user_id = ANY (%(user_ids)s::uuid[]))
GROUP BY event_category
"""

ROLLED_HOURLY_COUNTS_SQL = """
SELECT event_category AS category, sum(events) AS events
FROM public.event_category_hourly
WHERE hour = ANY (%(hours)s::timestamptz[])
GROUP BY event_category
"""

#: The caller's own linked students (RLS shows a parent the links naming them).
LINKED_STUDENTS_SQL = """
SELECT student_id FROM public.guardian_links WHERE parent_id = %(parent_id)s
ORDER BY student_id
"""

ROLLED_COUNTS_SQL = """
SELECT event_category AS category, sum(events) AS events
FROM public.event_category_daily
WHERE day >= %(first_day)s AND day < %(today)s AND day = ANY (%(days)s::date[])
GROUP BY event_category
"""


def count_live(conn: psycopg.Connection[Any], lo: datetime, hi: datetime, now: datetime,
               user_ids: Sequence[uuid.UUID] | None = None) -> dict[str, int]:
    """Counts per category from events in ``[lo, hi)`` up to ``now`` (every category)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    rows = fetch_all(conn, EVENT_COUNTS_SQL, {
        "lo": lo, "hi": hi, "now": now,
        "user_ids": list(user_ids) if user_ids is not None else None})
    for row in rows:
        counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
    return counts


def linked_students(conn: psycopg.Connection[Any], parent_id: uuid.UUID) -> list[uuid.UUID]:
    """The students a parent is linked to in ``guardian_links``."""
    return [row["student_id"] for row in fetch_all(conn, LINKED_STUDENTS_SQL,
                                                  {"parent_id": parent_id})]


def event_counts(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                 user_ids: Sequence[uuid.UUID] | None = None,
                 use_rollup: bool = False) -> dict[str, Any]:
    """Counts by category over the last ``days`` UTC days (zeros included) and the total.

    ``user_ids`` limits the count to those users (a student: themselves; a parent:
    themselves and their linked students); ``use_rollup`` is for callers who see every
    row (admins), as the rollup counts everyone.
    """
    period = calendar_days(now, days)
    counts = dict.fromkeys(CATEGORIES, 0)
    rolled = rolled_days(conn, period) if use_rollup and user_ids is None else set()
    if rolled:
        for row in fetch_all(conn, ROLLED_COUNTS_SQL, {
                "first_day": period.first_day, "today": period.today, "days": sorted(rolled)}):
            counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
    hours_used = 0
    for lo, hi in live_ranges(period, rolled):
        hours, live = split_today(conn, lo, hi, day_start(period.today),
                                  use_rollup and user_ids is None)
        hours_used += len(hours)
        if hours:
            for row in fetch_all(conn, ROLLED_HOURLY_COUNTS_SQL, {"hours": hours}):
                counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
        for part_lo, part_hi in live:
            for category, n in count_live(conn, part_lo, part_hi, period.now, user_ids).items():
                counts[category] += n
    return {**period.describe(),
            "user_ids": [str(u) for u in user_ids] if user_ids is not None else None,
            "days_from_rollup": len(rolled), "hours_from_rollup": hours_used,
            "counts": counts, "total": sum(counts.values())}
