"""``GET /api/analytics/health``: is the database reachable, is ingestion keeping up.

Liveness is public (load balancers and Render's health check call it without a token):
status, database, ingestion mode, queue depth and the written / dropped / retried totals.
The totals are summed over every ingestion process heard from in the last minute (each
gunicorn worker, each JetStream publisher and ``waymark writer``; see
``services/ingest/counters.py``), so every worker gives the same answer; in the JetStream
mode the stream's depth and the writers' lag come from the NATS server.
The writer's detail (invalid tokens, drops by reason — forgotten users among them — dead
letters, writer errors) tells an attacker what was detected and who was forgotten, so it
is shown to an admin's token only.

``schema`` says whether the database has every migration this version of Waymark expects.
An app started before ``waymark migrate`` ran (an upgrade deployed without its
pre-deploy step) answers 503 here, so a load balancer keeps sending traffic to the
instances that work; the names of what is missing (they fingerprint the version) are an
admin's detail.
"""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from backend.auth import current_caller
from backend.services.ingest import counters
from backend.services.ingest.stream import StreamPublisher
from backend.state import WaymarkState, get_state

bp = Blueprint("waymark_health", __name__, url_prefix="/api/analytics")

PUBLIC_COUNTERS = ("accepted", "written", "retried", "queue_depth", "queue_size", "running")


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Answer without auth; an admin's token adds the writer's detailed counters."""
    state = get_state()
    db_ok = state.db.ping()
    own = state.writer.stats()
    stats = _summed(state, own) if db_ok else {**own, "summed": False}
    caller = current_caller(optional=True)  # a bad token is no admin, and never a 401 here
    missing = state.migrations_pending() if db_ok else None
    healthy = db_ok and not missing  # None: could not be asked (a role without the grant)
    body: dict[str, Any] = {"status": "ok" if healthy else "degraded", "db": db_ok,
                            "schema": {"up_to_date": None if missing is None else not missing}}
    ingestion: dict[str, Any] = {"mode": "in-process", "ack": state.settings.ack,
                                 "processes": stats.pop("processes", None)}
    if isinstance(state.writer, StreamPublisher):
        ingestion["mode"] = "jetstream"
        ingestion["stream"] = stream = state.writer.stream_state_now()
        stats["queue_depth"] = stream.get("messages")
        stats["queue_size"] = None
    stats["running"] = own.get("running", True)
    body["ingestion"] = ingestion
    if caller is not None and caller.role == "admin":
        body["schema"]["pending_migrations"] = missing
        body["writer"] = stats
        body["writer"]["this_process"] = own
    else:
        body["writer"] = {key: stats.get(key, 0) for key in PUBLIC_COUNTERS}
        body["writer"]["dropped"] = sum(stats.get("dropped", {}).values())
    return jsonify(body), 200 if healthy else 503


def _summed(state: WaymarkState, own: dict[str, Any]) -> dict[str, Any]:
    """Every live process's counters added up (this one's as of now)."""
    try:
        with state.db.connection(timeout=2.0) as conn:
            return {**counters.summed(conn, state.writer.heartbeat, own), "summed": True}
    except psycopg.Error:
        return {**own, "summed": False}
