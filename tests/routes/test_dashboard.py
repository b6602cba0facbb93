"""The dashboard shell: served without data, locked down, reads only through the API."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_dashboard_is_served_with_a_strict_policy(client: FlaskClient) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert 'const api = "/api/analytics"' in page
    # No third-party resource: the page works on a closed network and leaks nothing.
    assert "http://" not in page and "https://" not in page
