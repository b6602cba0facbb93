"""Stored risk assessments: ``risk_assessment`` rows of ``learning_journey_events``.

Scoring every student live reads every event of the window (seconds at millions of
events), so ``waymark score`` stores one assessment per student and UTC day
(``score:<user>:<day>``; a second run the same day refreshes it) and the answers read
them back: at-risk-students today's, engagement a user's history. Each row keeps the
parameters it was made with and a key of them (``params_key``), so assessments made
with other parameters are never mixed in (docs/analytics.md, "At-risk students").
Writes follow the forget contract (docs/privacy.md, "Forget"): the shared forget lock
first, forgotten users filtered out, both as SQL functions (``waymark.lock_forget_shared``
and ``waymark.is_forgotten``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.db import Row, fetch_all, fetch_one
from backend.services.analytics import QUERIES
from backend.services.analytics.risk.factors import RiskAssessment
from backend.services.analytics.risk.params import DEFAULT_PARAMS, RiskParams, risk_level_for
from backend.services.analytics.window import day_start


def store_assessments(conn: psycopg.Connection[Any], assessments: Sequence[RiskAssessment], *,
                      now: datetime, params: RiskParams = DEFAULT_PARAMS) -> int:
    """Write (or refresh today's) risk assessment rows; returns rows written.

    ``details`` holds the score, level, factors and the parameters they were made with;
    ``params_key`` a key of those parameters (migration 0070), which at-risk-students
    looks today's assessments up by.
    """
    if not assessments:
        return 0
    now = now.astimezone(UTC)
    bound = {
        "now": now, "day": now.date().isoformat(),
        "user_ids": [a.user_id for a in assessments],
        "scores": [a.score for a in assessments],
        "levels": [a.level for a in assessments],
        "details": [json.dumps(_details(a, params)) for a in assessments],
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(QUERIES["lock_forget_shared"])
        cur.execute(QUERIES["store_assessments"], bound)
        return cur.rowcount


def _details(assessment: RiskAssessment, params: RiskParams) -> dict[str, Any]:
    data = assessment.as_dict()
    return {"score": data["score"], "level": data["engagement_level"], "factors": data["factors"],
            "params": params.as_dict()}


def _lookup(*, now: datetime, threshold: float, limit: int,
            params: RiskParams) -> dict[str, Any]:
    """The bound parameters of today's look-up: from 00:00 UTC of ``now``'s day to ``now``."""
    return {"today": day_start(now.date()), "now": now, "threshold": threshold,
            "limit": limit, "params": json.dumps(params.as_dict())}


def stored_summary(conn: psycopg.Connection[Any], *, now: datetime, threshold: float,
                   params: RiskParams) -> Row | None:
    """Today's assessments made with ``params``: ``scored``, ``flagged``, ``computed_at``.

    Counted from the index on (params_key, occurred_at) alone once its pages are
    all-visible, so the fast path stays fast at millions of rows.
    """
    return fetch_one(conn, QUERIES["stored_summary"],
                     _lookup(now=now, threshold=threshold, limit=0, params=params))


def stored_flagged(conn: psycopg.Connection[Any], *, now: datetime, threshold: float,
                   limit: int, params: RiskParams) -> list[Row]:
    """Today's assessments with a score ≥ ``threshold``, highest first, at most ``limit``."""
    return fetch_all(conn, QUERIES["stored_flagged"],
                     _lookup(now=now, threshold=threshold, limit=limit, params=params))


def risk_history(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, since: datetime,
                 now: datetime) -> list[dict[str, Any]]:
    """One user's stored assessments in ``(since, now]``, oldest first, for a chart."""
    rows = fetch_all(conn, QUERIES["risk_history"],
                     {"user_id": user_id, "since": since, "now": now})
    return [{"at": r["occurred_at"].isoformat(), "score": r["risk_score"],
             "risk_level": risk_level_for(float(r["risk_score"])),
             "engagement_level": r["engagement_level"]} for r in rows]
