"""``GET /api/analytics/openapi.json``: the API's OpenAPI 3.1 description (public)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from backend.routes.openapi_doc import document

bp = Blueprint("waymark_openapi", __name__, url_prefix="/api/analytics")


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The description clients and the fuzz tests generate requests from; no data in it."""
    response = jsonify(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
