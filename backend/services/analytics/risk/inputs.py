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
    Cohort,
    Cohorts,
    RiskAssessment,
    as_utc,
    assess,
    cohorts_of,
    rank,
)
from backend.services.analytics.risk.params import DEFAULT_PARAMS, RiskParams
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since


def score_students(conn: psycopg.Connection[Any], *, now: datetime,
                   params: RiskParams = DEFAULT_PARAMS,
                   user_ids: Sequence[uuid.UUID] | None = None,
                   cohorts: Cohorts | None = None,
                   history_days: int) -> list[RiskAssessment]:
    """Score every student the connection may see (or only ``user_ids``), highest risk first.

    One set-based query for all students; ``now`` is a parameter, never the database
    clock, so the past can be scored (tests, the OULAD replay, back-fills). The cohorts
    of the cohort-relative factors are ``cohorts`` when given (e.g. of every student, for
    a caller scoring in batches); else those the last ``waymark score`` stored (so a live
    answer agrees with the stored score); else those of the students scored here. With
    both cohort weights 0 no cohort is looked up.
    """
    now = as_utc(now)
    rows = fetch_inputs(conn, now=now, params=params, user_ids=user_ids,
                        history_days=history_days)
    if cohorts is None:  # without a cohort weight the cohort factors are left out anyway
        cohorts = (stored_cohorts(conn, user_ids)
                   or cohorts_of(rows, student_classes(conn, user_ids))) \
            if params.uses_cohorts else Cohorts(Cohort())
    return rank([assess(row, now=now, params=params, cohort=cohorts.of(row["user_id"]))
                 for row in rows])


def stored_cohorts(conn: psycopg.Connection[Any],
                   user_ids: Sequence[uuid.UUID] | None = None) -> Cohorts | None:
    """The medians the last ``waymark score`` stored, as far as the caller may read them
    (None: never stored)."""
    rows = fetch_all(conn, QUERIES["risk_cohort_medians"], {})
    population = next((r for r in rows if r["class_id"] is None), None)
    if population is None:
        return None

    def cohort(r: Row) -> Cohort:
        return Cohort(median_active_days=r["median_active_days"], median_xp=r["median_xp"],
                      median_missed_share=r["median_missed_share"],
                      median_late_share=r["median_late_share"],
                      scope="everyone" if r["class_id"] is None else "class")

    by_class = {r["class_id"]: (cohort(r), int(r["students"]))
                for r in rows if r["class_id"] is not None}
    return Cohorts.of_classes(cohort(population), by_class, student_classes(conn, user_ids))


def save_cohorts(conn: psycopg.Connection[Any], cohorts: Cohorts, *, students: int,
                 now: datetime) -> None:
    """Replace the stored medians by ``cohorts`` (one transaction with the caller's)."""
    conn.execute(QUERIES["risk_cohort_medians_clear"])
    scopes = [(None, cohorts.population, students),
              *((c, cohort, size) for c, (cohort, size) in cohorts.by_class.items())]
    with conn.cursor() as cur:
        cur.executemany(QUERIES["risk_cohort_median_save"], [
            {"class_id": class_id, "median_active_days": cohort.median_active_days,
             "median_xp": cohort.median_xp, "median_missed_share": cohort.median_missed_share,
             "median_late_share": cohort.median_late_share, "students": size,
             "computed_at": now}
            for class_id, cohort, size in scopes])


def student_classes(conn: psycopg.Connection[Any],
                    user_ids: Sequence[uuid.UUID] | None = None) -> dict[Any, list[Any]]:
    """The classes each student (or each of ``user_ids``) attends, as far as the connection
    may see."""
    ids = list(user_ids) if user_ids is not None else None
    return {r["user_id"]: r["class_ids"]
            for r in fetch_all(conn, QUERIES["risk_student_classes"], {"user_ids": ids})}


def fetch_inputs(conn: psycopg.Connection[Any], *, now: datetime,
                 params: RiskParams = DEFAULT_PARAMS,
                 user_ids: Sequence[uuid.UUID] | None = None,
                 history_days: int) -> list[Row]:
    """The raw numbers behind every visible student's factors (one row per student).

    Only ``window_days``, ``deadline_days``, ``trend_days`` and ``session_gap_minutes``
    reach the SQL; weights and the other horizons apply in :func:`.factors.assess`, so a
    calibration can re-assess the same rows under many parameter sets. Each student's
    first and last activity come from one look at their history (``spans_of_ids``); the
    students are those of ``user_ids``, or else found by a skip scan. A student is
    someone with an event in the last ``history_days`` (the anonymization age; first and
    last activity and quests assigned are looked for that far back).
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
        **ACTIVITY_PARAMS,
        "user_ids": list(user_ids) if user_ids is not None else None,
        "history_since": history_since(now, history_days),
    })
