"""What Waymark's logs may say about a request: the path as sent, ids masked, no address.

One definition for the two writers of request lines: gunicorn's access log under
``waymark serve`` (``scripts.serve.PrivateLogger``) and Flask's own ``Exception on <path>
[METHOD]`` line for an unhandled exception, which Flask writes with the *decoded* path (a
``%0A`` in it starts a forged log line) and with any user id in it (``/users/<id>``: a
forgotten user's id would outlive the forget in the logs).
"""

from __future__ import annotations

import logging
import re

from flask import has_request_context, request

#: a user id or a number as a path segment: masked, so a forgotten user's id does not stay
#: in the logs (/users/<id>, /engagement/<id>)
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}")
_NUMBER_SEGMENT = re.compile(r"/\d+(?=/|$)")
_FLASK_EXCEPTION = re.compile(r"Exception on .* \[([A-Z]+)\]", re.DOTALL)


def logged_path(raw_uri: str) -> str:
    """The path as the client sent it (still percent-encoded, so ``%0A`` cannot forge a log
    line), without the query string, ids masked."""
    path = raw_uri.split("?", 1)[0].split("#", 1)[0]
    path = "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}" for c in path)
    return _NUMBER_SEGMENT.sub("/<id>", _UUID.sub("<id>", path))


def request_path_for_logs() -> str:
    """The current request's path as :func:`logged_path` writes it (the raw URI the server
    received where it kept one: gunicorn's ``RAW_URI``, werkzeug's ``REQUEST_URI``)."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path
    return logged_path(str(raw))


class FlaskExceptionLine(logging.Filter):
    """Rewrites Flask's ``Exception on <decoded path> [METHOD]`` (app.logger) to the path
    as sent with ids masked; the traceback is left to the host's handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and has_request_context():
            match = _FLASK_EXCEPTION.fullmatch(record.msg)
            if match:
                record.msg = f"Exception on {request_path_for_logs()} [{match.group(1)}]"
                record.args = None
        return True
