"""Engagement of one user: activity, active days, sessions, logins, quests, streaks, risk.

Definitions (the same as the risk score's, so the numbers agree with its factors):
sessions are gap-based runs of events (see ``sessions.py``); quest completion rate is
distinct quests completed ÷ distinct quests started or completed in the window; the
streaks run over all of the user's history (``streaks.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.analytics import risk
from backend.services.analytics.event_counts import count_live
from backend.services.analytics.streaks import streaks
from backend.services.analytics.user_sessions import USER_SESSIONS_CTE
from backend.services.analytics.window import ratio, window

ENGAGEMENT_SQL = "WITH " + USER_SESSIONS_CTE + """
, win AS (
    SELECT occurred_at, event_type, event_data ->> 'quest_id' AS quest_id
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at > %(since)s AND occurred_at <= %(now)s
)
SELECT (SELECT count(*) FROM user_sessions) AS sessions,
       (SELECT avg(seconds) FROM user_sessions) AS avg_session_seconds,
       (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM win) AS active_days,
       (SELECT count(*) FROM win WHERE event_type = 'login_success') AS logins,
       (SELECT count(*) FROM win WHERE event_type = 'quest_started') AS quest_starts,
       (SELECT count(*) FROM win WHERE event_type = 'quest_completed') AS quest_completions,
       (SELECT count(DISTINCT quest_id) FROM win
         WHERE event_type IN ('quest_started', 'quest_completed')) AS quests_started,
       (SELECT count(DISTINCT quest_id) FROM win
         WHERE event_type = 'quest_completed') AS quests_completed,
       (SELECT max(occurred_at) FROM public.user_activity_events
         WHERE user_id = %(user_id)s AND occurred_at <= %(now)s) AS last_active
"""  # noqa: S608 - joins constant SQL fragments only

#: The user's stored risk assessments (``waymark score``) in the window, oldest first.
RISK_HISTORY_SQL = """
SELECT occurred_at, risk_score, engagement_level
FROM public.learning_journey_events
WHERE user_id = %(user_id)s AND milestone = 'risk_assessment'
  AND occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY occurred_at
"""


def engagement(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime, days: int,
               params: risk.RiskParams = risk.DEFAULT_PARAMS) -> dict[str, Any]:
    """Everything the engagement endpoint answers for one user, with the risk breakdown."""
    win = window(now, days)
    bound = {**win.params(), "user_id": user_id,
             "gap": timedelta(minutes=params.session_gap_minutes)}
    row = fetch_one(conn, ENGAGEMENT_SQL, bound) or {}
    # (since, now] == [since + 1 µs, now + 1 µs): timestamps have microsecond resolution.
    tick = timedelta(microseconds=1)
    by_category = count_live(conn, win.since + tick, win.now + tick, win.now, [user_id])
    avg_seconds = row.get("avg_session_seconds")
    assessment = _risk(conn, user_id, win.now, replace(params, window_days=days))
    last_active = row.get("last_active")
    return {
        "user_id": str(user_id),
        **win.describe(),
        "events_by_category": by_category,
        "total_events": sum(by_category.values()),
        "active_days": int(row.get("active_days", 0)),
        "sessions": int(row.get("sessions", 0)),
        "avg_session_minutes": round(float(avg_seconds) / 60, 2) if avg_seconds else None,
        "logins": int(row.get("logins", 0)),
        "logins_per_week": round(int(row.get("logins", 0)) / (days / 7), 2),
        "quest_starts": int(row.get("quest_starts", 0)),
        "quest_completions": int(row.get("quest_completions", 0)),
        "quests_started": int(row.get("quests_started", 0)),
        "quests_completed": int(row.get("quests_completed", 0)),
        "quest_completion_rate": ratio(int(row.get("quests_completed", 0)),
                                       int(row.get("quests_started", 0))),
        **streaks(conn, user_id, now=win.now),
        "last_active": last_active.isoformat() if last_active else None,
        "risk": assessment.as_dict() if assessment else None,
        "risk_history": risk_history(conn, user_id, now=win.now, days=days),
    }


def _risk(conn: psycopg.Connection[Any], user_id: uuid.UUID, now: datetime,
          params: risk.RiskParams) -> risk.RiskAssessment | None:
    """The user's risk now; None for someone who is not a student (e.g. a parent)."""
    found = risk.score_students(conn, now=now, params=params, user_ids=[user_id])
    return found[0] if found else None


def risk_history(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime,
                 days: int) -> list[dict[str, Any]]:
    """Stored assessments in the window, so risk over time can be charted."""
    win = window(now, days)
    rows = fetch_all(conn, RISK_HISTORY_SQL, {**win.params(), "user_id": user_id})
    return [{"at": r["occurred_at"].isoformat(), "score": r["risk_score"],
             "level": r["engagement_level"]} for r in rows]
