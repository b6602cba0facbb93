"""Streaks of one user: runs of consecutive active UTC days (an active day has any event).

The runs are the package's one definition of a streak (``streaks`` in ``queries.sql``),
shared with the risk score's ``broken_streak`` and the ``streak_reached`` milestones. The
current streak is alive while its last day is today or yesterday (a student who has not
yet been active today has not broken it); otherwise it is 0 (docs/analytics.md,
"Streaks").
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from backend.db import fetch_one
from backend.services.analytics import QUERIES
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since


def streaks(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime,
            history_days: int) -> dict[str, int]:
    """The user's current and longest streak (days) and active days over their history."""
    today: date = now.astimezone(UTC).date()
    row = fetch_one(conn, QUERIES["user_streaks"],
                    {"user_id": user_id, "now": now, "today": today,
                     "history_since": history_since(now, history_days),
                     **ACTIVITY_PARAMS}) or {}
    return {"current_streak": int(row.get("current_streak", 0)),
            "longest_streak": int(row.get("longest_streak", 0)),
            "active_days_total": int(row.get("active_days_total", 0))}
