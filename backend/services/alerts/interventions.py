"""Interventions: what a teacher, parent or admin did about a student, and what followed.

Every function takes a connection opened *as the caller* (``Database.as_user``): the
table's policies decide who may record an action about whom and who may read it, so
the web layer cannot grant more than the database does.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.alerts import QUERIES
from backend.taxonomy import NON_ACTIVITY_TYPES

ACTIONS = ("acknowledged", "contacted", "not_useful", "resolved")
NOTE_MAX_CHARS = 2000
COMPARISON = "no_action"
CAVEAT = ("Observational comparison, not proof of cause: the people who acted chose whom "
          "to act on, so the groups may differ in ways the figures do not show.")


class NotAllowed(PermissionError):
    """The caller may not record an action about this student (the policy refused it)."""


def record(conn: psycopg.Connection[Any], *, student_id: uuid.UUID, action: str,
           note: str | None, now: datetime) -> dict[str, Any]:
    """Store one action as the caller; the INSERT policy refuses a student they may not see."""
    if action not in ACTIONS:
        raise ValueError(f"action: must be one of {', '.join(ACTIONS)}")
    try:
        with conn.transaction():
            row = fetch_one(conn, QUERIES["insert_intervention"],
                            {"student_id": student_id, "action": action, "note": note,
                             "now": now})
    except psycopg.errors.InsufficientPrivilege as exc:
        raise NotAllowed("you may record actions only about students you may see") from exc
    assert row is not None, "INSERT … RETURNING gave no row"
    return _public(row)


def of_student(conn: psycopg.Connection[Any], student_id: uuid.UUID, *,
               limit: int = 50) -> list[dict[str, Any]]:
    """The student's interventions the caller may read, newest first."""
    rows = fetch_all(conn, QUERIES["interventions_of_student"],
                     {"student_id": student_id, "limit": limit})
    return [_public(row) for row in rows]


def outcomes(conn: psycopg.Connection[Any], *, now: datetime, days: int,
             threshold: float) -> dict[str, Any]:
    """Re-engagement and risk change after each action type, beside flagged students no one
    acted on: the loop's only feedback, labelled as the observational comparison it is."""
    rows = fetch_all(conn, QUERIES["outcomes"], {"now": now, "since": now - timedelta(days=days),
                                                 "threshold": threshold,
                                                 "passive": list(NON_ACTIVITY_TYPES)})
    by_action = {row["action"]: row for row in rows}
    groups = []
    for action in (*ACTIONS, COMPARISON):
        row = by_action.get(action)
        groups.append({"action": action, **_figures(row)})
    return {"days": days, "threshold": threshold, "groups": groups,
            "comparison": COMPARISON, "caveat": CAVEAT}


def _figures(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"students": 0, "active_again_7d": None, "active_again_14d": None,
                "observed_7d": 0, "observed_14d": 0, "mean_risk_change_14d": None}
    change = row["mean_risk_change"]
    return {"students": row["students"],
            "observed_7d": row["observed_7d"], "observed_14d": row["observed_14d"],
            "active_again_7d": _share(row["active_7d"], row["observed_7d"]),
            "active_again_14d": _share(row["active_14d"], row["observed_14d"]),
            "mean_risk_change_14d": None if change is None else round(float(change), 4),
            "risk_pairs": row["risk_pairs"]}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "intervention_id": str(row["intervention_id"]),
            "student_id": str(row["student_id"]), "actor_id": str(row["actor_id"]),
            "created_at": row["created_at"].isoformat()}
