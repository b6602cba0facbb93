"""Popular quests: popularity = views + 2·starts + 5·completions in the window.

Completion rate = completions ÷ starts of the quest in the window, at most 1 (a quest
started before the window and completed in it would otherwise push it above 1); no
start in the window → null. Ties in popularity are broken by quest id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.window import capped_ratio, window

POPULAR_QUESTS_SQL = """
SELECT event_data ->> 'quest_id' AS quest_id,
       max(event_data ->> 'quest_title') AS quest_title,
       count(*) FILTER (WHERE event_type = 'quest_viewed') AS views,
       count(*) FILTER (WHERE event_type = 'quest_started') AS starts,
       count(*) FILTER (WHERE event_type = 'quest_completed') AS completions
FROM public.user_activity_events
WHERE event_type IN ('quest_viewed', 'quest_started', 'quest_completed')
  AND occurred_at > %(since)s AND occurred_at <= %(now)s
  AND event_data ? 'quest_id'
GROUP BY 1
ORDER BY count(*) FILTER (WHERE event_type = 'quest_viewed')
         + 2 * count(*) FILTER (WHERE event_type = 'quest_started')
         + 5 * count(*) FILTER (WHERE event_type = 'quest_completed') DESC, 1
LIMIT %(limit)s
"""


def popular_quests(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                   limit: int) -> dict[str, Any]:
    """The ``limit`` most popular quests of the window, most popular first."""
    win = window(now, days)
    rows = fetch_all(conn, POPULAR_QUESTS_SQL, {**win.params(), "limit": limit})
    quests = []
    for row in rows:
        views, starts, completions = int(row["views"]), int(row["starts"]), int(row["completions"])
        quests.append({
            "quest_id": row["quest_id"], "quest_title": row["quest_title"],
            "views": views, "starts": starts, "completions": completions,
            "popularity": views + 2 * starts + 5 * completions,
            "completion_rate": capped_ratio(completions, starts),
        })
    return {**win.describe(), "limit": limit,
            "formula": "views + 2*starts + 5*completions", "quests": quests}
