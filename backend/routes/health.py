"""``GET /api/analytics/health``: is the database reachable, is ingestion keeping up.

Liveness is public (load balancers and Render's health check call it without a token):
status, database, ingestion mode, queue depth and the written / dropped / retried totals.
The writer's detail (invalid tokens, drops by reason — forgotten users among them — dead
letters, writer errors) tells an attacker what was detected and who was forgotten, so it
is shown to an admin's token only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from backend.auth import current_caller
from backend.state import get_state

bp = Blueprint("waymark_health", __name__, url_prefix="/api/analytics")

PUBLIC_COUNTERS = ("accepted", "written", "retried", "queue_depth", "queue_size", "running")


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Answer without auth; an admin's token adds the writer's detailed counters."""
    state = get_state()
    db_ok = state.db.ping()
    stats = state.writer.stats()
    caller = current_caller(optional=True)  # a bad token is no admin, and never a 401 here
    body: dict[str, Any] = {"status": "ok" if db_ok else "degraded", "db": db_ok}
    body["ingestion"] = {"mode": "in-process", "ack": state.settings.ack}
    if caller is not None and caller.role == "admin":
        body["writer"] = stats
    else:
        body["writer"] = {key: stats[key] for key in PUBLIC_COUNTERS}
        body["writer"]["dropped"] = sum(stats["dropped"].values())
    return jsonify(body), 200 if db_ok else 503
