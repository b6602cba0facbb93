"""``GET /dashboard``: a small page for admins, parents and students over the JSON API.

The page holds the access token in memory only and reads everything through
``/api/analytics/*``, so the same JWT checks and RLS policies decide what it shows. Its
script, stylesheet and the vendored Chart.js are files served from ``backend/static``
(carried in the wheel), so the CSP allows scripts and styles from 'self' only: no inline
script, no ``unsafe-eval``, nothing from a CDN (docs/dashboard.md).
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("waymark_dashboard", __name__, template_folder="../templates",
               static_folder="../static", static_url_path="/dashboard/static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@bp.get("/dashboard")
def dashboard() -> ResponseReturnValue:
    """Serve the dashboard shell; all data arrives later through the authenticated API."""
    html = render_template("dashboard.html")
    return html, 200, {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
