"""Event counts by category: what kinds of activity happen (a student sees their own)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.window import window
from backend.taxonomy import CATEGORIES

#: Counts per category in the window; ``user_id`` NULL means every row RLS lets through.
EVENT_COUNTS_SQL = """
SELECT event_category AS category, count(*) AS events
FROM public.user_activity_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
  AND (%(user_id)s::uuid IS NULL OR user_id = %(user_id)s::uuid)
GROUP BY event_category
"""


def event_counts(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                 user_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Counts by category (every category present, zeros included) and the total."""
    win = window(now, days)
    rows = fetch_all(conn, EVENT_COUNTS_SQL, {**win.params(), "user_id": user_id})
    counts = dict.fromkeys(CATEGORIES, 0)
    for row in rows:
        counts[row["category"]] = int(row["events"])
    return {**win.describe(), "user_id": str(user_id) if user_id else None,
            "counts": counts, "total": sum(counts.values())}
