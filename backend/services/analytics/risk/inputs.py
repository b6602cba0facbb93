"""The raw numbers behind every student's factors, fetched in one set-based statement.

Every number comes from ``user_activity_events`` alone, sessions included (the stored
``user_sessions`` are not read), so back-filled events score exactly like tracked ones.
``risk_inputs`` in ``../queries.sql`` gathers them for every student the connection may
see (RLS applies), using the package's one definition of a student, a session and a
streak; :mod:`.factors` turns them into factors. Who is scored and why: docs/risk.md,
"Who is scored".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import Row, fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.risk.factors import (
    Cohorts,
    RiskAssessment,
    as_utc,
    assess,
    cohorts_of,
    rank,
)
from backend.services.analytics.risk.params import DEFAULT_PARAMS, RiskParams

#: Event types the app records *for* a student; they do not show the student active.
NON_ACTIVITY_TYPES: tuple[str, ...] = ("quest_assigned",)


def score_students(conn: psycopg.Connection[Any], *, now: datetime,
                   params: RiskParams = DEFAULT_PARAMS,
                   user_ids: Sequence[uuid.UUID] | None = None,
                   cohorts: Cohorts | None = None) -> list[RiskAssessment]:
    """Score every student the connection may see (or only ``user_ids``), highest risk first.

    One set-based query for all students; ``now`` is a parameter, never the database
    clock, so the past can be scored (tests, the OULAD replay, back-fills). The cohorts
    of the cohort-relative factors are ``cohorts`` when given (e.g. of every student, for
    a caller scoring in batches), otherwise those of the students scored here.
    """
    now = as_utc(now)
    rows = fetch_inputs(conn, now=now, params=params, user_ids=user_ids)
    cohorts = cohorts or cohorts_of(rows, student_classes(conn))
    return rank([assess(row, now=now, params=params, cohort=cohorts.of(row["user_id"]))
                 for row in rows])


def student_classes(conn: psycopg.Connection[Any]) -> dict[Any, list[Any]]:
    """The classes each student attends (as far as the connection may see)."""
    return {r["user_id"]: r["class_ids"]
            for r in fetch_all(conn, QUERIES["risk_student_classes"], {})}


def fetch_inputs(conn: psycopg.Connection[Any], *, now: datetime,
                 params: RiskParams = DEFAULT_PARAMS,
                 user_ids: Sequence[uuid.UUID] | None = None) -> list[Row]:
    """The raw numbers behind every visible student's factors (one row per student).

    Only ``window_days``, ``deadline_days``, ``trend_days`` and ``session_gap_minutes``
    reach the SQL; weights and the other horizons apply in :func:`.factors.assess`, so a
    calibration can re-assess the same rows under many parameter sets. With ``user_ids``
    the statement leaves out the skip scan over every user id, which would still be
    planned (and start parallel workers) for nothing.
    """
    now = as_utc(now)
    query = QUERIES["risk_inputs" if user_ids is None else "risk_inputs_given"]
    return fetch_all(conn, query, {
        "now": now,
        "since": now - timedelta(days=params.window_days),
        "deadlines_since": now - timedelta(days=params.deadline_days),
        "recent_since": now - timedelta(days=params.trend_days),
        "today": now.date(),
        "gap": params.session_gap,
        "passive": list(NON_ACTIVITY_TYPES),
        "user_ids": list(user_ids) if user_ids is not None else None,
    })
