"""Answers shared by the blueprints that read the database as the caller."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from backend.db import DatabaseUnavailable


def database_unavailable(exc: DatabaseUnavailable) -> ResponseReturnValue:
    """The database is down: say so and let the client retry (never an HTML 500)."""
    response = jsonify({"error": "the database is unavailable; retry in a minute"})
    response.headers["Retry-After"] = "60"
    return response, 503


def install(bp: Blueprint) -> None:
    """Give ``bp`` the shared JSON answers."""
    bp.register_error_handler(DatabaseUnavailable, database_unavailable)
