"""Records each host request as a ``source='server'`` event; a 5xx adds an ``api_error``.

Not recorded: static files, health checks and Waymark's own endpoints. The event type comes
from URL rules (``{"POST /quests/<quest_id>/start": "quest_started"}``, keyed by Flask's rule
and method; the rule's variables go to ``event_data``), else ``api_request``. Every hook body
runs under :func:`guard`: a tracking bug or a dead database never fails or slows a request —
the hooks only build a small dict and ``put_nowait`` it (a full queue drops and counts).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, Response, g, request

from backend.auth import known_caller
from backend.clock import now_utc
from backend.services.ingest import items
from backend.state import WaymarkState
from backend.tracking import client_of

log = logging.getLogger("waymark.middleware")

DEFAULT_EVENT_TYPE = "api_request"
DEFAULT_SKIP_PATHS = ("/health", "/healthz", "/livez", "/readyz", "/ping", "/favicon.ico")
_START = "_waymark_started"
_STATUS = "_waymark_status"

F = TypeVar("F", bound=Callable[..., Any])


def _current_request() -> Request:
    """The request behind Flask's proxy (each attribute read through it is a context lookup)."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]  # noqa: SLF001
    return req


def guard(default_arg: bool = False) -> Callable[[F], F]:
    """Run a hook body so that any exception is logged and swallowed, never raised."""

    def decorate(hook: F) -> F:
        @wraps(hook)
        def wrapper(self: ActivityTracker, *args: Any) -> Any:
            try:
                return hook(self, *args)
            except Exception:
                self.failures += 1
                if self.failures <= 10 or self.failures % 1000 == 0:
                    log.exception("waymark: request tracking failed (%d so far)", self.failures)
                return args[0] if default_arg and args else None

        return wrapper  # type: ignore[return-value]

    return decorate


def parse_rules(rules: Mapping[str, str] | None) -> dict[tuple[str, str], str]:
    """``{"POST /quests/<id>/start": "quest_started"}`` → ``{("POST", rule): type}``."""
    parsed: dict[tuple[str, str], str] = {}
    for key, event_type in (rules or {}).items():
        method, _, rule = key.strip().partition(" ")
        if not rule:
            method, rule = "*", method
        parsed[(method.upper(), rule.strip())] = event_type
    return parsed


class ActivityTracker:
    """The request hooks of one app."""

    def __init__(self, state: WaymarkState, url_rules: Mapping[str, str] | None = None,
                 skip_paths: Iterable[str] = DEFAULT_SKIP_PATHS) -> None:
        self.state = state
        self.rules = parse_rules(url_rules)
        self.skip_paths = frozenset(skip_paths)
        self.failures = 0

    def install(self, app: Flask) -> None:
        """Attach the hooks to ``app``."""
        app.before_request(self.before)
        app.after_request(self.after)
        app.teardown_request(self.teardown)

    def _skipped(self, req: Request) -> bool:
        endpoint = req.endpoint or ""
        return (endpoint == "static" or endpoint.endswith(".static")
                or endpoint.startswith("waymark_") or req.path in self.skip_paths)

    @guard()
    def before(self) -> None:
        """Note the start time."""
        setattr(g, _START, time.perf_counter())

    @guard(default_arg=True)
    def after(self, response: Response) -> Response:
        """Queue the request's event (the response is returned untouched).

        This runs in every host request, so the request and ``g`` are looked up once each
        (every attribute read through Flask's context proxies costs a context lookup).
        """
        ctx_g = g._get_current_object()  # noqa: SLF001 - werkzeug's documented way
        started = ctx_g.get(_START)
        req = _current_request()
        if started is None or self._skipped(req):
            return response
        status = _http_status(response.status_code)
        setattr(ctx_g, _STATUS, status)
        rule = req.url_rule
        method = req.method
        event_type = DEFAULT_EVENT_TYPE
        data: dict[str, Any] = {"method": method}
        if rule is not None:
            data["endpoint"] = rule.rule
            event_type = (self.rules.get((method, rule.rule))
                          or self.rules.get(("*", rule.rule)) or DEFAULT_EVENT_TYPE)
            if event_type != DEFAULT_EVENT_TYPE and req.view_args:
                data.update({k: items.storable(str(v)[:200]) for k, v in req.view_args.items()})
        received_at = now_utc()
        row = items.event_row(
            event_type, received_at, source="server", event_data=data,
            page_path=items.storable(req.path[:2000]), status_code=status,
            duration_ms=int((time.perf_counter() - started) * 1000))
        self._submit({"kind": "event", "row": row, "received_at": received_at,
                      "client": client_of(req, self.state.settings),
                      "user_id": self._caller_id(ctx_g)})
        return response

    @guard()
    def teardown(self, exc: BaseException | None) -> None:
        """A 5xx or an unhandled exception also becomes an ``api_error``."""
        status = g.get(_STATUS)
        if exc is None and (status is None or status < 500):
            return
        req = _current_request()
        if g.get(_START) is None or self._skipped(req):
            return
        received_at = now_utc()
        row: dict[str, Any] = {
            "error_id": items.new_id(), "occurred_at": received_at, "received_at": received_at,
            "error_type": "api_error", "source": "server", "event_data": {},
            "message": items.storable(
                (f"{type(exc).__name__}: {exc}" if exc else f"HTTP {status}")[:2000]),
            "stack": items.storable("".join(traceback.format_exception(exc))[-8000:])
            if exc else None,
            "page_path": items.storable(req.path[:2000]),
            "api_endpoint": items.storable(req.path[:2000]),
            "http_method": req.method, "status_code": status or 500,
        }
        self._submit({"kind": "error", "row": row, "received_at": received_at,
                      "client": client_of(req, self.state.settings),
                      "user_id": self._caller_id()})

    @staticmethod
    def _caller_id(request_globals: Any = None) -> Any:
        """The user already verified by this request's own auth (else the writer checks)."""
        caller = known_caller(request_globals)
        return caller.user_id if caller is not None else None

    def _submit(self, item: dict[str, Any]) -> None:
        self.state.writer.submit(item)


def _http_status(code: int) -> int | None:
    """The host's status code when it is an HTTP one, else None.

    Werkzeug lets a host answer any integer; the column holds 100–599 (smallint with a
    CHECK), and psycopg's binary int2 dumper would silently wrap a larger value into it.
    """
    return code if 100 <= code <= 599 else None
