"""``/`` and ``/favicon.ico`` of the stand-alone service, so a first visit finds its way.

Only ``create_app`` (what ``waymark serve`` runs) mounts this: in a host application the
root belongs to the host.
"""

from __future__ import annotations

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

bp = Blueprint("waymark_home", __name__)

HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Waymark</title><link rel="icon" href="/favicon.ico" type="image/svg+xml">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;
color:#1f2933}a{color:#0b5cad}code{background:#eef2f6;padding:0 .25rem}</style></head>
<body><h1>Waymark is running</h1>
<p>Privacy-first activity tracking and learning analytics.</p>
<ul>
<li><a href="/dashboard">Dashboard</a> &mdash; mint a token with
<code>waymark dev-token --role admin</code> and paste it there.</li>
<li><a href="/api/analytics/health">Health</a> &mdash; is the database reachable, is ingestion
keeping up.</li>
<li>Documentation: <code>README.md</code> and <code>docs/</code> in the repository.</li>
</ul></body></html>
"""

# A waymark: a small marker on a path (an SVG, so no binary file to ship).
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#0b5cad"/>'
    '<path d="M16 5l8 11h-5v11h-6V16H8z" fill="#fff"/></svg>'
)

HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
           "Referrer-Policy": "no-referrer"}


@bp.get("/")
def home() -> ResponseReturnValue:
    """Where a newcomer lands after `make run`: links to the dashboard and health."""
    return HOME, 200, HEADERS


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    """Browsers ask for it on every page; answer it instead of logging a 404 each time."""
    return Response(FAVICON, mimetype="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})
