"""Answers shared by the blueprints that read the database as the caller."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ErrorHandlerCallable, ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from backend.db import MISSING_SCHEMA_ERRORS, DatabaseUnavailable
from backend.routes.params import ParamError
from backend.state import get_state

log = logging.getLogger("waymark")


def database_unavailable(exc: DatabaseUnavailable) -> ResponseReturnValue:
    """The database is down: say so and let the client retry (never an HTML 500)."""
    response = jsonify({"error": "the database is unavailable; retry in a minute"})
    response.headers["Retry-After"] = "60"
    return response, 503


def schema_behind(exc: Exception) -> ResponseReturnValue:
    """A table, column or function is missing. If the database lacks migrations this version
    expects (an upgrade deployed before `waymark migrate` ran), that is the operator's to
    fix: 503 naming the command, so clients retry. If every migration is there, it is a bug
    in our SQL (or a hand-dropped object) and fails loudly as a 500."""
    missing = get_state().migrations_pending()
    if not missing:
        raise exc
    log.error("waymark: the database lacks %d migrations this version needs (first: %s); "
              "run `waymark migrate`", len(missing), missing[0])
    response = jsonify({"error": f"the database is {len(missing)} migrations behind this "
                                 "version of Waymark; an operator must run `waymark migrate`"})
    response.headers["Retry-After"] = "60"
    return response, 503


def bad_parameter(exc: ParamError) -> ResponseReturnValue:
    """A parameter or field missing, malformed or out of range: 400 naming it."""
    return private_json({"error": exc.message}, 400)


def private_json(body: object, status: int = 200) -> ResponseReturnValue:
    """A JSON answer about people: never stored by a shared cache."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "private, no-store"
    return response


def install(bp: Blueprint) -> None:
    """Give ``bp`` the shared JSON answers."""
    bp.register_error_handler(DatabaseUnavailable, database_unavailable)
    for missing in MISSING_SCHEMA_ERRORS:
        bp.register_error_handler(missing, schema_behind)
    bp.register_error_handler(ParamError, bad_parameter)


API_PREFIX = "/api/analytics/"


def install_api_http_errors(app: Flask) -> None:
    """Answer routing errors under ``/api/analytics/`` as JSON, as every other answer there is.

    An unknown path or a wrong method never reaches a blueprint (routing fails first), so the
    handler sits on the app. It takes only our paths: a handler the host app had already
    registered for 404/405 still answers everything else, and Flask's page otherwise.
    """
    for exc_class in (NotFound, MethodNotAllowed):
        code = exc_class.code
        previous = app.error_handler_spec[None][code].get(exc_class)
        app.register_error_handler(exc_class, _json_under_api(previous))


def _json_under_api(previous: ErrorHandlerCallable | None
                    ) -> Callable[[HTTPException], ResponseReturnValue]:
    def handle(exc: HTTPException) -> ResponseReturnValue:
        if not request.path.startswith(API_PREFIX):
            if previous is None:
                return exc.get_response()
            return current_app.ensure_sync(previous)(exc)  # type: ignore[no-any-return]
        if isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            response = jsonify(error=f"{request.method} is not allowed here; use {allowed}")
            response.headers["Allow"] = allowed
            return response, 405
        return jsonify(error=f"no such endpoint: {request.path}"), 404
    return handle
