"""``GET /me/export`` (the caller's own data) and ``DELETE /users/<id>`` (self or admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, stream_with_context
from flask.typing import ResponseReturnValue

from backend.auth import AuthError, current_caller, require_caller
from backend.routes import errors as shared_answers
from backend.routes.params import uuid_arg
from backend.services.privacy.export import prepare_export, stream_export
from backend.services.privacy.forget import forget_user
from backend.state import get_state

bp = Blueprint("waymark_privacy", __name__, url_prefix="/api/analytics")
shared_answers.install(bp)


@bp.get("/me/export")
@require_caller()
def export_me() -> ResponseReturnValue:
    """Stream everything stored about the caller as one JSON document (any signed-in user)."""
    caller = current_caller()
    state = get_state()
    plan = prepare_export(state.db, caller.user_id)
    body = stream_export(state.db, plan, now=datetime.now(UTC))  # only ever the caller's own
    return Response(stream_with_context(body), mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="waymark-export-{caller.user_id}.json"',
        "Cache-Control": "no-store",
    })


@bp.delete("/users/<user_id>")
@require_caller()
def forget(user_id: str) -> ResponseReturnValue:
    """Forget a user everywhere (the user themselves or an admin); answers the receipt."""
    caller = current_caller()
    target = uuid_arg(user_id)  # the canonical form only, as everywhere (400 otherwise)
    if target != caller.user_id and not caller.is_admin:
        raise AuthError(403, "only the user themselves or an admin may delete a user's data")
    state = get_state()
    receipt = forget_user(state.db, target, now=datetime.now(UTC),
                          drop_queued=state.writer.drop_user)
    return jsonify({"user_id": str(target), **receipt.as_dict()}), 200

