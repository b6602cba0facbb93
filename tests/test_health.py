"""The health endpoint and the app factory."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import AuthTokens
from flask.testing import FlaskClient
from ingestion_support import BROWSER, flush

from backend import create_app
from backend.services.ingest import session_segments


def test_health_reports_database(client: FlaskClient) -> None:
    response = client.get("/api/analytics/health")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json()["db"] is True


def test_health_degrades_when_database_is_unreachable(app_config: dict[str, Any]) -> None:
    app_config["WAYMARK_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    app_config["WAYMARK_POOL_MIN_SIZE"] = 0
    app = create_app(app_config)
    try:
        response = app.test_client().get("/api/analytics/health")
        assert response.status_code == 503
        assert response.get_json()["db"] is False
    finally:
        app.extensions["waymark"].close(0.1)


def test_health_counts_writer_errors(client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
                                    auth: AuthTokens) -> None:
    """A bug in the writer (here a KeyError in assign_sessions, once) is surfaced in health."""
    real = session_segments.assign_sessions
    calls = [0]

    def buggy(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise KeyError("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(session_segments, "assign_sessions", buggy)
    admin = auth.header(uuid.uuid4(), "admin")
    assert client.get("/api/analytics/health", headers=admin).get_json()["writer"][
        "writer_errors"] == 0
    response = client.post("/api/analytics/activity/track", json={"event_type": "page_view"},
                           headers=BROWSER)
    assert response.status_code == 202
    flush(client.application)
    writer = client.get("/api/analytics/health", headers=admin).get_json()["writer"]
    assert writer["writer_errors"] == 1 and writer["written"] == 1
    assert writer["dead_lettered"] == 0


def test_the_writers_detail_is_for_admins_only(client: FlaskClient, auth: AuthTokens) -> None:
    """Liveness and totals are public; drops by reason (forgotten users among them), invalid
    tokens and dead letters tell an attacker too much, so only an admin's token shows them."""
    public = client.get("/api/analytics/health").get_json()["writer"]
    assert set(public) == {"accepted", "written", "retried", "queue_depth", "queue_size",
                           "running", "dropped"}
    assert isinstance(public["dropped"], int)
    for headers in (auth.header(uuid.uuid4(), "student"), {"Authorization": "Bearer junk"}):
        response = client.get("/api/analytics/health", headers=headers)
        assert response.status_code == 200 and response.get_json()["writer"] == public
    admin = client.get("/api/analytics/health", headers=auth.header(uuid.uuid4(), "admin"))
    detail = admin.get_json()["writer"]
    assert {"invalid_tokens", "dead_lettered", "writer_errors"} <= set(detail)
    assert isinstance(detail["dropped"], dict)
