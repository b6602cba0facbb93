"""The students a caller may see, each with their latest stored risk, trend and last activity.

This is what dashboards and alerts start from: an admin gets every student (paged), a
teacher the students of the classes they teach, a parent their linked children, a
student themself. Who is in the list is decided by the database (``roster`` in
queries.sql uses the RLS policies' own helper, ``waymark.visible_students()``), so the
list and the rows behind it cannot disagree. Risk figures are the assessments ``waymark
score`` stored (docs/risk.md); a student never scored has ``null`` risk fields.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES, risk
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since

#: A change of the score by more than this over 7 days is a trend; less is "steady".
TREND_STEP = 0.05
TREND_DAYS = 7


@dataclass(frozen=True)
class StudentFilter:
    """What the caller asked for: one class, one risk level, an id prefix, one page."""

    class_id: uuid.UUID | None = None
    risk_level: str | None = None
    prefix: str | None = None
    limit: int = 50
    offset: int = 0


def students(conn: psycopg.Connection[Any], *, now: datetime,
             chosen: StudentFilter = StudentFilter(),
             history_days: int) -> dict[str, Any]:
    """One page of the caller's students, most at risk first, and how many there are."""
    rows = fetch_all(conn, QUERIES["students_page"], {
        "now": now, "week_ago": now - timedelta(days=TREND_DAYS),
        "history_since": history_since(now, history_days), **ACTIVITY_PARAMS,
        "class_id": chosen.class_id, "prefix": chosen.prefix,
        "level": engagement_level_of(chosen.risk_level),
        "limit": chosen.limit, "offset": chosen.offset})
    total = int(rows[0]["total"]) if rows else 0
    return {"students": [_student(row) for row in rows if row["user_id"] is not None],
            "total": total, "limit": chosen.limit, "offset": chosen.offset}


def engagement_level_of(risk_level: str | None) -> str | None:
    """The stored engagement level a risk level filter matches (the same cut points)."""
    if risk_level is None:
        return None
    return risk.LEVELS[risk.RISK_LEVELS.index(risk_level)]


def trend(score: float | None, week_ago: float | None) -> str | None:
    """rising / falling / steady between the assessment 7 days ago and the latest."""
    if score is None or week_ago is None:
        return None
    change = score - week_ago
    if change > TREND_STEP:
        return "rising"
    if change < -TREND_STEP:
        return "falling"
    return "steady"


def _student(row: dict[str, Any]) -> dict[str, Any]:
    score = _rounded(row["risk_score"])
    week_ago = _rounded(row["risk_score_7d_ago"])
    return {
        "user_id": str(row["user_id"]),
        "classes": [{"class_id": c["class_id"], "name": c["name"]} for c in row["classes"]],
        "risk_score": score,
        "risk_level": risk.risk_level_for(score) if score is not None else None,
        "engagement_level": row["engagement_level"],
        "assessed_at": _iso(row["assessed_at"]),
        "risk_score_7d_ago": week_ago,
        "trend": trend(score, week_ago),
        "last_active_at": _iso(row["last_active_at"]),
        "last_intervention": row["last_intervention"],  # the newest the caller may read
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
