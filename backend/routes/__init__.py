"""HTTP blueprints. Routes are thin: parse, call a service, answer."""

from __future__ import annotations

from flask import Flask

from backend.routes import (
    analytics,
    classes,
    errors,
    health,
    ingestion,
    interventions,
    openapi,
    privacy,
)


def register_api(app: Flask) -> None:
    """Mount Waymark's API blueprints under ``/api/analytics``."""
    app.register_blueprint(health.bp)
    app.register_blueprint(ingestion.bp)
    app.register_blueprint(privacy.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(classes.bp)
    app.register_blueprint(interventions.bp)
    app.register_blueprint(openapi.bp)
    errors.install_api_http_errors(app)
