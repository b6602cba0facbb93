"""A learner's journey: first quest, quests completed, streak, badges, time, favourite pillar.

All over the user's history up to ``now`` (the last ``history_days``, the anonymization
age: older events belong to no one): ``first_quest_date`` is the UTC day
of the first quest started or completed; ``total_quests_completed`` and
``badges_earned`` count distinct ``quest_id`` / ``badge_id``; ``time_on_platform_hours``
sums the lengths of the user's sessions (the package's one definition,
``sessions`` in ``queries.sql``); ``favorite_pillar`` is the
pillar with the most XP from completed quests (ties: alphabetical; none: null).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.analytics import QUERIES, risk
from backend.services.analytics.streaks import streaks
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since


def journey(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime,
            params: risk.RiskParams = risk.DEFAULT_PARAMS,
            history_days: int) -> dict[str, Any]:
    """The journey endpoint's answer for one user."""
    now = now.astimezone(UTC)
    since = history_since(now, history_days)
    bound = {"user_id": user_id, "now": now, "since": since, "gap": params.session_gap,
             **ACTIVITY_PARAMS}
    row = fetch_one(conn, QUERIES["journey"], bound) or {}
    pillars = fetch_all(conn, QUERIES["pillar_xp"],
                        {"user_id": user_id, "now": now, "history_since": since})
    first = row.get("first_quest_at")
    return {
        "user_id": str(user_id),
        "known": known(conn, user_id, since=since),
        "first_quest_date": first.astimezone(UTC).date().isoformat() if first else None,
        "total_quests_completed": int(row.get("total_quests_completed", 0)),
        **streaks(conn, user_id, now=now, history_days=history_days),
        "badges_earned": int(row.get("badges_earned", 0)),
        "time_on_platform_hours": round(float(row.get("seconds_on_platform", 0)) / 3600, 2),
        "sessions": int(row.get("sessions", 0)),
        "favorite_pillar": pillars[0]["pillar"] if pillars else None,
        "xp_by_pillar": {p["pillar"]: _number(p["xp"]) for p in pillars},
    }


def known(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, since: datetime) -> bool:
    """Whether any event of the user since ``since`` is stored: an answer of zeros may be a
    wrong id."""
    row = fetch_one(conn, QUERIES["user_known"], {"user_id": user_id, "history_since": since})
    return bool(row and row["known"])


def _number(value: Any) -> int | float:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float
