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
from backend.services.analytics import QUERIES
from backend.services.analytics.daily import calendar_days, live_ranges, rolled_days
from backend.services.analytics.hourly import split_today
from backend.services.analytics.window import day_start
from backend.taxonomy import CATEGORIES


def count_live(conn: psycopg.Connection[Any], lo: datetime, hi: datetime, now: datetime,
               user_ids: Sequence[uuid.UUID] | None = None) -> dict[str, int]:
    """Counts per category from events in ``[lo, hi)`` up to ``now`` (every category)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    rows = fetch_all(conn, QUERIES["event_counts"], {
        "lo": lo, "hi": hi, "now": now,
        "user_ids": list(user_ids) if user_ids is not None else None})
    for row in rows:
        counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
    return counts


def visible_students(conn: psycopg.Connection[Any]) -> list[uuid.UUID]:
    """The students the caller may see besides themself: a parent's linked children, a
    teacher's class students (the RLS policies' own helper, so answers match the rows)."""
    return [row["user_id"] for row in fetch_all(conn, QUERIES["visible_students"], {})]


def event_counts(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                 user_ids: Sequence[uuid.UUID] | None = None,
                 use_rollup: bool = False) -> dict[str, Any]:
    """Counts by category over the last ``days`` UTC days (zeros included) and the total.

    ``user_ids`` limits the count to those users (a student: themselves; a parent or a
    teacher: themselves and the students they may see); ``use_rollup`` is for callers who see every
    row (admins), as the rollup counts everyone.
    """
    period = calendar_days(now, days)
    counts = dict.fromkeys(CATEGORIES, 0)
    rolled = rolled_days(conn, period) if use_rollup and user_ids is None else set()
    if rolled:
        for row in fetch_all(conn, QUERIES["rolled_counts"], {
                "first_day": period.first_day, "today": period.today, "days": sorted(rolled)}):
            counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
    hours_used = 0
    for lo, hi in live_ranges(period, rolled):
        hours, live = split_today(conn, lo, hi, day_start(period.today),
                                  use_rollup and user_ids is None)
        hours_used += len(hours)
        if hours:
            for row in fetch_all(conn, QUERIES["rolled_hourly_counts"], {"hours": hours}):
                counts[row["category"]] = counts.get(row["category"], 0) + int(row["events"])
        for part_lo, part_hi in live:
            for category, n in count_live(conn, part_lo, part_hi, period.now, user_ids).items():
                counts[category] += n
    return {**period.describe(),
            "user_ids": [str(u) for u in user_ids] if user_ids is not None else None,
            "days_from_rollup": len(rolled), "hours_from_rollup": hours_used,
            "counts": counts, "total": sum(counts.values())}
