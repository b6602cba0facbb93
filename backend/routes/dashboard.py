"""``GET /dashboard``: a small page for admins, parents and students over the JSON API.

The page holds the access token in memory only and reads everything through
``/api/analytics/*``, so the same JWT checks and RLS policies decide what it shows.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("waymark_dashboard", __name__, template_folder="../templates")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
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
