"""The health endpoint and the app factory."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from backend import create_app


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
