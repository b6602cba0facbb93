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

from backend.db import fetch_all, fetch_one
from backend.services.analytics import risk
from backend.services.analytics.window import day_start

#: Today's stored assessments (RLS applies) made with ``params`` — one per student, as
#: ``waymark score`` keys them ``score:<user>:<day>`` and refreshes them in place — found
#: by the key of their parameters (``params_key``, migration 0070): the index on
#: (params_key, occurred_at) carries the score and user, so counting reads no heap row
#: once the pages are all-visible. How many, how many at or above the threshold, and
#: when they were computed.
STORED_SUMMARY_SQL = """
SELECT count(*) AS scored, count(*) FILTER (WHERE risk_score >= %(threshold)s) AS flagged,
       max(occurred_at) AS computed_at
FROM public.learning_journey_events
WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
  AND params_key = waymark.risk_params_key(%(params)s::jsonb)
"""

#: The flagged ones, highest first: ranked from the index, then only the returned rows'
#: factors are read from the heap.
STORED_FLAGGED_SQL = """
WITH top AS (
    SELECT id FROM public.learning_journey_events
    WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
      AND params_key = waymark.risk_params_key(%(params)s::jsonb)
      AND risk_score >= %(threshold)s
    ORDER BY risk_score DESC, user_id
    LIMIT %(limit)s
)
SELECT l.user_id, l.occurred_at, l.risk_score, l.engagement_level,
       l.details -> 'factors' AS factors
FROM top JOIN public.learning_journey_events l USING (id)
ORDER BY l.risk_score DESC, l.user_id
"""


def at_risk_students(conn: psycopg.Connection[Any], *, now: datetime, threshold: float,
                     limit: int, params: risk.RiskParams = risk.DEFAULT_PARAMS,
                     live: bool = False) -> dict[str, Any]:
    """Students with risk ≥ ``threshold`` (at most ``limit``), highest first, with factors."""
    bound = {"today": day_start(now.date()), "now": now, "threshold": threshold,
             "limit": limit, "params": json.dumps(params.as_dict())}
    summary = None if live else fetch_one(conn, STORED_SUMMARY_SQL, bound)
    if summary and summary["scored"]:
        students = [_stored(row) for row in fetch_all(conn, STORED_FLAGGED_SQL, bound)]
        source, computed_at = "stored", summary["computed_at"].isoformat()
        scored, flagged = int(summary["scored"]), int(summary["flagged"])
    else:
        assessments = risk.score_students(conn, now=now, params=params)
        above = [a for a in assessments if a.score >= threshold]
        students = [a.as_dict() for a in above[:limit]]
        source, computed_at = "live", now.isoformat()
        scored, flagged = len(assessments), len(above)
    return {"days": params.window_days, "threshold": threshold, "limit": limit,
            "source": source, "computed_at": computed_at, "students_scored": scored,
            "count": flagged, "students": students}


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": str(row["user_id"]), "score": round(float(row["risk_score"]), 4),
            "level": row["engagement_level"], "factors": row["factors"] or [],
            "computed_at": row["occurred_at"].isoformat()}
