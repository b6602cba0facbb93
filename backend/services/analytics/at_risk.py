"""At-risk students: risk ≥ threshold, highest first, each with its factors.

Scoring every student live reads every event of the window (seconds at millions of
events), so the answer uses the assessments ``waymark score`` stored today when they
were computed with the same parameters (``source: "stored"``, with their
``computed_at``); otherwise, or with ``live=True``, it scores everyone now with
``risk.score_students`` — one set-based query (``source: "live"``). The stored rows
are read by ``risk/storage.py``, which writes them (docs/analytics.md, "At-risk
students").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.services.analytics import risk
from backend.services.analytics.risk import parameter_sets


def at_risk_students(conn: psycopg.Connection[Any], *, now: datetime, threshold: float,
                     limit: int, params: risk.RiskParams = risk.DEFAULT_PARAMS,
                     days: int | None = None, live: bool = False,
                     history_days: int) -> dict[str, Any]:
    """Students with risk ≥ ``threshold`` (at most ``limit``), highest first, with factors.

    ``days``: the window asked for; None — the scoring parameters' own window (the active
    set's, else ``params``'), which is what ``waymark score`` stored with, so the nightly
    scores are read rather than everyone scored again.
    """
    params, parameter_set = parameter_sets.effective(conn, params, days=days)
    summary = None if live else risk.stored_summary(conn, now=now, threshold=threshold,
                                                    params=params)
    if summary and summary["scored"]:
        flagged_rows = risk.stored_flagged(conn, now=now, threshold=threshold, limit=limit,
                                           params=params)
        students = [_stored(row) for row in flagged_rows]
        source, computed_at = "stored", summary["computed_at"].isoformat()
        scored, flagged = int(summary["scored"]), int(summary["flagged"])
    else:
        assessments = risk.score_students(conn, now=now, params=params,
                                          history_days=history_days)
        above = [a for a in assessments if a.score >= threshold]
        students = [a.as_dict() for a in above[:limit]]
        source, computed_at = "live", now.isoformat()
        scored, flagged = len(assessments), len(above)
    return {"days": params.window_days, "threshold": threshold, "limit": limit,
            "source": source, "computed_at": computed_at, "parameter_set": parameter_set, "students_scored": scored,
            "count": flagged, "students": students}


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": str(row["user_id"]), "score": round(float(row["risk_score"]), 4),
            "risk_level": risk.risk_level_for(float(row["risk_score"])),
            "engagement_level": row["engagement_level"],
            "factors": risk.with_explanations(row["factors"] or []),
            "computed_at": row["occurred_at"].isoformat()}
