"""A learner's journey: first quest, quests completed, streak, badges, time, favourite pillar.

All over the user's whole history up to ``now``: ``first_quest_date`` is the UTC day
of the first quest started or completed; ``total_quests_completed`` and
``badges_earned`` count distinct ``quest_id`` / ``badge_id``; ``time_on_platform_hours``
sums the lengths of the user's sessions (``sessions.py``); ``favorite_pillar`` is the
pillar with the most XP from completed quests (ties: alphabetical; none: null).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.analytics import risk
from backend.services.analytics.streaks import streaks
from backend.services.analytics.user_sessions import USER_SESSIONS_CTE

JOURNEY_SQL = "WITH " + USER_SESSIONS_CTE + """
, mine AS (
    SELECT occurred_at, event_type, event_data
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at <= %(now)s
      AND event_type IN ('quest_started', 'quest_completed', 'badge_earned')
)
SELECT (SELECT min(occurred_at) FROM mine
         WHERE event_type IN ('quest_started', 'quest_completed')) AS first_quest_at,
       (SELECT count(DISTINCT event_data ->> 'quest_id') FROM mine
         WHERE event_type = 'quest_completed') AS total_quests_completed,
       (SELECT count(DISTINCT event_data ->> 'badge_id') FROM mine
         WHERE event_type = 'badge_earned') AS badges_earned,
       (SELECT coalesce(sum(seconds), 0) FROM user_sessions) AS seconds_on_platform,
       (SELECT count(*) FROM user_sessions) AS sessions
"""  # noqa: S608 - joins constant SQL fragments only

#: XP per pillar from completed quests (a non-numeric xp counts as 0).
PILLAR_XP_SQL = """
SELECT event_data ->> 'pillar' AS pillar,
       sum(CASE WHEN jsonb_typeof(event_data -> 'xp') = 'number'
                THEN (event_data ->> 'xp')::numeric ELSE 0 END) AS xp,
       count(*) AS completions
FROM public.user_activity_events
WHERE user_id = %(user_id)s AND occurred_at <= %(now)s AND event_type = 'quest_completed'
  AND event_data ? 'pillar'
GROUP BY 1
ORDER BY xp DESC, pillar
"""


def journey(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime,
            params: risk.RiskParams = risk.DEFAULT_PARAMS) -> dict[str, Any]:
    """The journey endpoint's answer for one user."""
    now = now.astimezone(UTC)
    bound = {"user_id": user_id, "now": now, "since": None,
             "gap": timedelta(minutes=params.session_gap_minutes)}
    row = fetch_one(conn, JOURNEY_SQL, bound) or {}
    pillars = fetch_all(conn, PILLAR_XP_SQL, {"user_id": user_id, "now": now})
    first = row.get("first_quest_at")
    return {
        "user_id": str(user_id),
        "first_quest_date": first.astimezone(UTC).date().isoformat() if first else None,
        "total_quests_completed": int(row.get("total_quests_completed", 0)),
        **streaks(conn, user_id, now=now),
        "badges_earned": int(row.get("badges_earned", 0)),
        "time_on_platform_hours": round(float(row.get("seconds_on_platform", 0)) / 3600, 2),
        "sessions": int(row.get("sessions", 0)),
        "favorite_pillar": pillars[0]["pillar"] if pillars else None,
        "xp_by_pillar": {p["pillar"]: _number(p["xp"]) for p in pillars},
    }


def _number(value: Any) -> int | float:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float
