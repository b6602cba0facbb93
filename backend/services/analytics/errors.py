"""Error summary: total, counts by type, the top groups (each with its trend against the
window before) and the 10 most recent errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.window import window
from backend.taxonomy import ERROR_TYPES


def error_summary(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                  top: int = 10, recent: int = 10) -> dict[str, Any]:
    """What went wrong in the window and where to look first."""
    win = window(now, days)
    params = {**win.params(), "previous_since": win.since - (win.now - win.since),
              "limit": top, "recent": recent}
    by_type = dict.fromkeys(ERROR_TYPES, 0)
    for row in fetch_all(conn, QUERIES["errors_by_type"], params):
        by_type[row["error_type"]] = int(row["errors"])
    groups = [{**row, "first_seen": row["first_seen"].isoformat(),
               "last_seen": row["last_seen"].isoformat(),
               "trend": trend(int(row["errors"]), int(row["previous_errors"]))}
              for row in fetch_all(conn, QUERIES["top_error_groups"], params)]
    recent_rows = [{**row, "error_id": str(row["error_id"]),
                    "occurred_at": row["occurred_at"].isoformat()}
                   for row in fetch_all(conn, QUERIES["recent_errors"], params)]
    return {**win.describe(), "total_errors": sum(by_type.values()),
            "error_counts_by_type": by_type, "top_groups": groups, "recent_errors": recent_rows}


#: A group's count must change by more than this share to be rising or falling.
TREND_SHARE = 0.2


def trend(errors: int, previous: int) -> str:
    """new / rising / falling / steady: this window's count against the one before."""
    if previous == 0:
        return "new" if errors else "steady"
    change = (errors - previous) / previous
    if change > TREND_SHARE:
        return "rising"
    if change < -TREND_SHARE:
        return "falling"
    return "steady"
