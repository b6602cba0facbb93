"""The stand-alone service's root page and favicon (a host app's root stays the host's)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from backend import Waymark


def test_root_page_links_the_dashboard_and_health(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'href="/dashboard"' in page and 'href="/api/analytics/health"' in page
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_favicon_is_served(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg")


def test_a_host_app_keeps_its_root(client: FlaskClient) -> None:
    host = Flask("host")
    host.config.update(client.application.config)
    Waymark(host, track_requests=False)
    try:
        assert host.test_client().get("/").status_code == 404
    finally:
        host.extensions["waymark"].close()
