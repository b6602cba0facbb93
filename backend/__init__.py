"""Waymark: privacy-first activity tracking and learning analytics for Flask on PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask import Flask

from backend.extension import Waymark
from backend.routes import dashboard, home
from backend.state import get_state
from backend.tracking import request_event, track

__all__ = ["Waymark", "create_app", "get_state", "request_event", "track"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The stand-alone Waymark service (what ``waymark serve`` runs)."""
    app = Flask(__name__)
    app.config.from_mapping(JSON_SORT_KEYS=False)
    if test_config is not None:
        app.config.from_mapping(test_config)
    Waymark(app)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(home.bp)
    return app
