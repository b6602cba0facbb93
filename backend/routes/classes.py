"""Students and classes (docs/access.md): who the caller may see, and class summaries.

Reads run as the caller (``db.as_user``), so RLS decides every row; the web layer also
answers 403 with no data where a role may not ask at all. The class and membership
writes are admin-only and run on the service connection (no API role can write them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from backend.auth import AuthError, current_caller, require_caller
from backend.routes import errors as shared_answers
from backend.routes import tables
from backend.routes.errors import private_json
from backend.routes.params import (
    DAYS_RANGE,
    THRESHOLD_RANGE,
    ParamError,
    float_arg,
    int_arg,
    uuid_arg,
)
from backend.services.analytics import risk
from backend.services.analytics.class_summary import (
    Disclosure,
    class_list,
    class_summary,
    teaches,
)
from backend.services.analytics.students import StudentFilter, students
from backend.services.roster import manage
from backend.state import get_state

bp = Blueprint("waymark_classes", __name__, url_prefix="/api/analytics")
shared_answers.install(bp)

STUDENTS_LIMIT_RANGE = (1, 500)
OFFSET_RANGE = (0, 10_000_000)
PREFIX_CHARS = "0123456789abcdef-"


def _as_caller(work: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any] | None:
    with get_state().reads.as_user(current_caller().claims) as conn:
        return work(conn)


# ------------------------------------------------------------------------ reads


@bp.get("/students")
@require_caller()
def list_students() -> ResponseReturnValue:
    """The students the caller may see, most at risk first, with risk, trend, last active."""
    chosen = StudentFilter(
        class_id=_optional_uuid("class_id"), risk_level=_risk_level(), prefix=_prefix(),
        limit=int_arg(request.args, "limit", 50, STUDENTS_LIMIT_RANGE),
        offset=int_arg(request.args, "offset", 0, OFFSET_RANGE))
    now = datetime.now(UTC)
    tables.wants_csv()
    history = get_state().settings.anonymize_after_days  # a person's history: docs/analytics.md
    body = _as_caller(lambda conn: students(conn, now=now, chosen=chosen,
                                            history_days=history)) or {}
    return tables.answer(body, "students", "students")


@bp.get("/classes")
@require_caller()
def list_classes() -> ResponseReturnValue:
    """The classes the caller may read (member counts for admins and teachers)."""
    with_counts = current_caller().role in ("admin", "teacher")
    return private_json(_as_caller(lambda conn: class_list(conn, with_counts=with_counts)) or {})


@bp.get("/classes/<class_id>/summary")
@require_caller("admin", "teacher")
def summary(class_id: str) -> ResponseReturnValue:
    """One class over the last N days, small groups suppressed for teachers."""
    target = uuid_arg(class_id, "class_id")
    days = int_arg(request.args, "days", 30, DAYS_RANGE)
    threshold = float_arg(request.args, "threshold", 0.7, THRESHOLD_RANGE)
    caller = current_caller()
    disclosure = Disclosure(get_state().settings.min_group_size, unsuppressed=caller.is_admin)
    now = datetime.now(UTC)

    def work(conn: Any) -> dict[str, Any] | None:
        if not caller.is_admin and not teaches(conn, target):
            raise AuthError(403, "only a teacher of this class or an admin may see its summary")
        return class_summary(conn, target, now=now, days=days, disclosure=disclosure,
                             threshold=threshold)

    body = _as_caller(work)
    if body is None:
        return private_json({"error": f"no class {target}"}, 404)
    return private_json(body)


# ----------------------------------------------------------------- admin writes


@bp.post("/classes")
@require_caller("admin")
def create_class() -> ResponseReturnValue:
    """A new class: ``{"name": ...}``."""
    name = _body_field("name")
    with get_state().db.connection() as conn:
        created = manage.create_class(conn, name)
    return private_json(created, 201)


@bp.patch("/classes/<class_id>")
@require_caller("admin")
def rename_class(class_id: str) -> ResponseReturnValue:
    """Rename a class: ``{"name": ...}``."""
    target = uuid_arg(class_id, "class_id")
    name = _body_field("name")
    with get_state().db.connection() as conn:
        return private_json(manage.rename_class(conn, target, name))


@bp.delete("/classes/<class_id>")
@require_caller("admin")
def delete_class(class_id: str) -> ResponseReturnValue:
    """Delete a class and its memberships (students' events stay)."""
    target = uuid_arg(class_id, "class_id")
    with get_state().db.connection() as conn:
        manage.delete_class(conn, target)
    return "", 204


@bp.get("/classes/<class_id>/members")
@require_caller("admin")
def class_members(class_id: str) -> ResponseReturnValue:
    """The class's teachers and students."""
    target = uuid_arg(class_id, "class_id")
    with get_state().db.connection() as conn:
        return private_json({"class_id": str(target), "members": manage.members(conn, target)})


@bp.put("/classes/<class_id>/members/<user_id>")
@require_caller("admin")
def add_member(class_id: str, user_id: str) -> ResponseReturnValue:
    """Add a teacher or student: ``{"member_role": "teacher" | "student"}`` (idempotent)."""
    target, member = uuid_arg(class_id, "class_id"), uuid_arg(user_id)
    role = _body_field("member_role")
    with get_state().db.connection() as conn:
        added = manage.add_member(conn, target, member, role)
    return private_json({"class_id": str(target), "user_id": str(member), "member_role": role,
                  "added": added}, 201 if added else 200)


@bp.delete("/classes/<class_id>/members/<user_id>")
@require_caller("admin")
def remove_member(class_id: str, user_id: str) -> ResponseReturnValue:
    """Remove someone from a class (``?member_role=`` for one role only)."""
    target, member = uuid_arg(class_id, "class_id"), uuid_arg(user_id)
    with get_state().db.connection() as conn:
        removed = manage.remove_member(conn, target, member, request.args.get("member_role"))
    if not removed:
        return private_json({"error": f"{member} is not a member of class {target}"}, 404)
    return private_json({"class_id": str(target), "user_id": str(member), "removed": removed})


# ---------------------------------------------------------------------- answers




@bp.errorhandler(manage.RosterError)
def bad_roster_request(exc: manage.RosterError) -> ResponseReturnValue:
    """A bad class name or member role: 400 naming it."""
    return jsonify({"error": str(exc)}), 400


@bp.errorhandler(manage.ClassNotFound)
def no_such_class(exc: manage.ClassNotFound) -> ResponseReturnValue:
    """404 for an admin's request about a class that does not exist."""
    return jsonify({"error": f"no class {exc.args[0]}"}), 404


def _optional_uuid(name: str) -> uuid.UUID | None:
    raw = request.args.get(name)
    return None if raw is None else uuid_arg(raw, name)


def _risk_level() -> str | None:
    level = request.args.get("level")
    if level is None:
        return None
    if level not in risk.RISK_LEVELS:
        raise ParamError(f"level must be one of {', '.join(risk.RISK_LEVELS)}, not {level[:32]!r}")
    return level


def _prefix() -> str | None:
    raw = request.args.get("q")
    if raw is None or raw == "":
        return None
    prefix = raw.strip().lower()
    if len(prefix) > 36 or any(ch not in PREFIX_CHARS for ch in prefix):
        raise ParamError("q must be the start of a user id (hex digits and dashes)")
    return prefix


def _body_field(name: str) -> str:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get(name), str):
        raise ParamError(f"send a JSON object with a string {name!r}")
    return str(body[name])
