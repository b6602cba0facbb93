"""Error summary: total, counts by type, the top groups and the 10 most recent errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.window import window
from backend.taxonomy import ERROR_TYPES

ERRORS_BY_TYPE_SQL = """
SELECT error_type, count(*) AS errors
FROM public.error_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
GROUP BY error_type
"""

#: Groups by occurrences in the window (not all-time), with their all-time facts beside.
TOP_GROUPS_SQL = """
SELECT g.group_id, g.fingerprint, g.error_type, g.message, g.component_name, g.api_endpoint,
       g.status, g.first_seen, g.last_seen, w.errors, w.users_affected
FROM (SELECT group_id, count(*) AS errors, count(DISTINCT user_id) AS users_affected
      FROM public.error_events
      WHERE occurred_at > %(since)s AND occurred_at <= %(now)s AND group_id IS NOT NULL
      GROUP BY group_id) w
JOIN public.error_groups g ON g.group_id = w.group_id
ORDER BY w.errors DESC, g.group_id
LIMIT %(limit)s
"""

RECENT_ERRORS_SQL = """
SELECT error_id, occurred_at, error_type, message, component_name, page_path, api_endpoint,
       http_method, status_code, source, browser, os, device_type, group_id
FROM public.error_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY occurred_at DESC, error_id
LIMIT %(recent)s
"""


def error_summary(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                  top: int = 10, recent: int = 10) -> dict[str, Any]:
    """What went wrong in the window and where to look first."""
    win = window(now, days)
    params = {**win.params(), "limit": top, "recent": recent}
    by_type = dict.fromkeys(ERROR_TYPES, 0)
    for row in fetch_all(conn, ERRORS_BY_TYPE_SQL, params):
        by_type[row["error_type"]] = int(row["errors"])
    groups = [{**row, "first_seen": row["first_seen"].isoformat(),
               "last_seen": row["last_seen"].isoformat()}
              for row in fetch_all(conn, TOP_GROUPS_SQL, params)]
    recent_rows = [{**row, "error_id": str(row["error_id"]),
                    "occurred_at": row["occurred_at"].isoformat()}
                   for row in fetch_all(conn, RECENT_ERRORS_SQL, params)]
    return {**win.describe(), "total_errors": sum(by_type.values()),
            "error_counts_by_type": by_type, "top_groups": groups, "recent_errors": recent_rows}
