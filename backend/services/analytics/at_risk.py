"""At-risk students: risk ≥ threshold, highest first, each with its factors.

Scoring every student live reads every event of the window (seconds at millions of
events), so the answer uses the assessments ``waymark score`` stored today when they
were computed with the same parameters (``source: "stored"``, with their
``computed_at``); otherwise, or with ``live=True``, it scores everyone now with
``risk.score_students`` — one set-based query (``source: "live"``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services import risk
from backend.services.analytics.window import day_start

#: Today's latest stored assessment per student (RLS applies), made with ``params``.
STORED_SQL = """
SELECT user_id, occurred_at, risk_score, engagement_level, details
FROM (SELECT DISTINCT ON (user_id) user_id, occurred_at, risk_score, engagement_level, details
      FROM public.learning_journey_events
      WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s
        AND occurred_at <= %(now)s
      ORDER BY user_id, occurred_at DESC) latest
WHERE details -> 'params' = %(params)s::jsonb
ORDER BY risk_score DESC, user_id
"""


def at_risk_students(conn: psycopg.Connection[Any], *, now: datetime, threshold: float,
                     limit: int, params: risk.RiskParams = risk.DEFAULT_PARAMS,
                     live: bool = False) -> dict[str, Any]:
    """Students with risk ≥ ``threshold`` (at most ``limit``), highest first, with factors."""
    stored = [] if live else fetch_all(conn, STORED_SQL, {
        "today": day_start(now.date()), "now": now,
        "params": json.dumps(params.as_dict())})
    if stored:
        scored = [_stored(row) for row in stored]
        source, computed_at = "stored", max(row["occurred_at"] for row in stored).isoformat()
    else:
        scored = [a.as_dict() for a in risk.score_students(conn, now=now, params=params)]
        source, computed_at = "live", now.isoformat()
    flagged = [s for s in scored if s["score"] >= threshold]
    return {"days": params.window_days, "threshold": threshold, "limit": limit,
            "source": source, "computed_at": computed_at, "students_scored": len(scored),
            "count": len(flagged), "students": flagged[:limit]}


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    details = row["details"]
    return {"user_id": str(row["user_id"]), "score": round(float(row["risk_score"]), 4),
            "level": row["engagement_level"], "factors": details.get("factors", []),
            "computed_at": row["occurred_at"].isoformat()}
