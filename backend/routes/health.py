"""``GET /api/analytics/health``: is the database reachable, what is the writer doing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from backend.state import get_state

bp = Blueprint("waymark_health", __name__, url_prefix="/api/analytics")


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Answer without auth so load balancers and Render's health check can use it."""
    state = get_state()
    db_ok = state.db.ping()
    body: dict[str, Any] = {"status": "ok" if db_ok else "degraded", "db": db_ok}
    body["ingestion"] = {"mode": "in-process", "ack": state.settings.ack}
    body["writer"] = state.writer.stats()
    return jsonify(body), 200 if db_ok else 503
