"""Routing errors under /api/analytics answer JSON; the host app's own pages are left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import TEST_JWT_SECRET, _scratch_database
from flask import Flask

from backend import Waymark, create_app


@pytest.fixture(scope="module")
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    yield from _scratch_database(pg_server_url, template=template_db)


def _config(url: str) -> dict[str, object]:
    return {"TESTING": True, "WAYMARK_DATABASE_URL": url, "WAYMARK_JWT_SECRET": TEST_JWT_SECRET,
            "WAYMARK_POOL_MAX_SIZE": 2}


@pytest.mark.parametrize(("method", "path", "status", "needle", "allow"), [
    ("get", "/api/analytics/no-such-thing", 404, "no such endpoint: /api/analytics/no-such-thing",
     None),
    ("get", "/api/analytics/activity/track", 405, "GET is not allowed here", "OPTIONS, POST"),
    ("delete", "/api/analytics/health", 405, "DELETE is not allowed here", "GET, HEAD, OPTIONS"),
])
def test_api_routing_errors_are_json(database_url: str, method: str, path: str, status: int,
                                     needle: str, allow: str | None) -> None:
    app = create_app(_config(database_url))
    try:
        response = getattr(app.test_client(), method)(path)
        assert response.status_code == status
        assert response.is_json and needle in response.get_json()["error"]
        assert response.headers.get("Allow") == allow
    finally:
        app.extensions["waymark"].close()


def test_host_pages_keep_their_own_404(database_url: str) -> None:
    """A host app's 404 handler, registered before Waymark, still answers the host's paths."""
    host = Flask("host")
    host.config.from_mapping(_config(database_url))
    host.register_error_handler(404, lambda exc: ("host says: not here", 404))
    Waymark(host, track_requests=False)
    try:
        client = host.test_client()
        own = client.get("/missing-page")
        assert (own.status_code, own.get_data(as_text=True)) == (404, "host says: not here")
        ours = client.get("/api/analytics/missing")
        assert ours.status_code == 404 and ours.is_json
    finally:
        host.extensions["waymark"].close()


def test_without_a_host_handler_flask_answers_its_page(database_url: str) -> None:
    host = Flask("plain-host")
    host.config.from_mapping(_config(database_url))
    Waymark(host, track_requests=False)
    try:
        response = host.test_client().get("/missing-page")
        assert response.status_code == 404 and response.mimetype == "text/html"
    finally:
        host.extensions["waymark"].close()
