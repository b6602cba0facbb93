"""Interventions (docs/alerts.md): record what was done about a student, list it, and ask
whether it helped.

Writes and reads run as the caller (``Database.as_user``): the table's policies decide
who may record or read an action about whom; the web layer adds a 403 for roles that may
never ask and 400s that name the bad field.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from backend.auth import AuthError, current_caller, require_access_to, require_caller
from backend.db import unstorable
from backend.routes import errors as shared_answers
from backend.routes.errors import private_json
from backend.routes.params import (
    THRESHOLD_RANGE,
    ParamError,
    float_arg,
    int_arg,
    uuid_arg,
)
from backend.services.alerts import interventions
from backend.state import get_state

bp = Blueprint("waymark_interventions", __name__, url_prefix="/api/analytics")
shared_answers.install(bp)

OUTCOME_DAYS_RANGE = (7, 365)
LIST_LIMIT_RANGE = (1, 500)
BODY_KEYS = {"student_id", "action", "note"}




@bp.post("/interventions")
@require_caller("teacher", "parent", "admin")
def record_intervention() -> ResponseReturnValue:
    """``{student_id, action, note?}`` → 201 with the stored row; 403 for a student not theirs."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ParamError("send a JSON object {student_id, action, note?}")
    unknown = set(body) - BODY_KEYS
    if unknown:
        raise ParamError(f"{sorted(unknown)[0]}: unknown field")
    student_id = uuid_arg(str(body.get("student_id", "")), "student_id")
    action = body.get("action")
    if action not in interventions.ACTIONS:
        raise ParamError(f"action: must be one of {', '.join(interventions.ACTIONS)}")
    note = body.get("note")
    if note is not None and (not isinstance(note, str)
                             or len(note) > interventions.NOTE_MAX_CHARS):
        raise ParamError(f"note: a string of at most {interventions.NOTE_MAX_CHARS} characters")
    if note is not None and (problem := unstorable(note)) is not None:
        raise ParamError(f"note: {problem}")
    caller = current_caller()
    try:
        with get_state().db.as_user(caller.claims) as conn:
            row = interventions.record(conn, student_id=student_id, action=str(action),
                                       note=note or None, now=datetime.now(UTC))
    except interventions.NotAllowed as exc:
        raise AuthError(403, str(exc)) from exc
    return private_json(row, 201)


@bp.get("/interventions")
@require_caller()
def list_interventions() -> ResponseReturnValue:
    """``?student_id=`` → that student's interventions the caller may read, newest first."""
    raw = request.args.get("student_id")
    if raw is None:
        raise ParamError("student_id: required")
    student_id = uuid_arg(raw, "student_id")
    require_access_to(student_id)
    limit = int_arg(request.args, "limit", 50, LIST_LIMIT_RANGE)
    with get_state().reads.as_user(current_caller().claims) as conn:
        rows = interventions.of_student(conn, student_id, limit=limit)
    return private_json({"student_id": str(student_id), "interventions": rows})


@bp.get("/interventions/outcomes")
@require_caller("admin")
def intervention_outcomes() -> ResponseReturnValue:
    """Per action type: share active again within 7/14 days and risk change, vs no action."""
    days = int_arg(request.args, "days", 90, OUTCOME_DAYS_RANGE)
    threshold = float_arg(request.args, "threshold", 0.7, THRESHOLD_RANGE)
    with get_state().reads.as_user(current_caller().claims) as conn:
        body = interventions.outcomes(conn, now=datetime.now(UTC), days=days,
                                      threshold=threshold)
    return private_json(body)
