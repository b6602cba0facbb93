"""Engagement of one user: activity, active days, sessions, logins, quests, streaks, risk.

Sessions and streaks are the package's one definition of each (``sessions`` and
``streaks`` in ``queries.sql``), the ones the risk score's factors use, with the same gap
(``RiskParams.session_gap_minutes``). Quest completion rate is distinct quests completed ÷
distinct quests started or completed in the window; the streaks run over all of the
user's history (``streaks.py``). What each number means: docs/analytics.md,
"Engagement".
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_one
from backend.services.analytics import QUERIES, risk
from backend.services.analytics.event_counts import count_live
from backend.services.analytics.journey import known
from backend.services.analytics.risk import parameter_sets
from backend.services.analytics.streaks import streaks
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since, ratio, window


def engagement(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime, days: int,
               params: risk.RiskParams = risk.DEFAULT_PARAMS,
               history_days: int) -> dict[str, Any]:
    """Everything the engagement endpoint answers for one user, with the risk breakdown."""
    win = window(now, days)
    history = history_since(win.now, history_days)
    bound = {**win.params(), "user_id": user_id, "gap": params.session_gap,
             "history_since": history, **ACTIVITY_PARAMS}
    row = fetch_one(conn, QUERIES["engagement"], bound) or {}
    # (since, now] == [since + 1 µs, now + 1 µs): timestamps have microsecond resolution.
    tick = timedelta(microseconds=1)
    by_category = count_live(conn, win.since + tick, win.now + tick, win.now, [user_id])
    avg_seconds = row.get("avg_session_seconds")
    # the score over its own window, not the period asked: the same number as the at-risk
    # list, the nightly score and its alerts
    params, parameter_set = parameter_sets.effective(conn, params)
    assessment = _risk(conn, user_id, win.now, params, history_days)
    last_active = row.get("last_active")
    return {
        "user_id": str(user_id),
        "known": known(conn, user_id, since=history),
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
        **streaks(conn, user_id, now=win.now, history_days=history_days),
        "last_active": last_active.isoformat() if last_active else None,
        # a student who withdrew or completed is not scored (docs/risk.md): say why
        "left": ({"event": row["left_event"], "at": row["left_at"].isoformat()}
                 if row.get("left_at") else None),
        "risk": assessment.as_dict() if assessment else None,
        "risk_parameter_set": parameter_set,
        "risk_history": risk.risk_history(conn, user_id, since=win.since, now=win.now),
    }


def _risk(conn: psycopg.Connection[Any], user_id: uuid.UUID, now: datetime,
          params: risk.RiskParams, history_days: int) -> risk.RiskAssessment | None:
    """The user's risk now; None for someone who is not a student (e.g. a parent)."""
    found = risk.score_students(conn, now=now, params=params, user_ids=[user_id],
                                history_days=history_days)
    return found[0] if found else None
