"""The Python API: ``track()`` anywhere, ``request_event().trigger()`` in a request.

Both build a queue item and hand it to the writer of the right Waymark state: the current
app's inside an app context; outside one (a job, a thread) the state of the only app
``Waymark`` was initialised on in this process (``WaymarkState.live()``). With several such apps and no app context, pass ``app=``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from flask import Flask, Request, current_app, has_app_context, has_request_context, request

from backend.clock import now_utc
from backend.config import Settings
from backend.services.ingest import items
from backend.services.ingest.validation import TrackEvent, validate
from backend.state import WaymarkState, get_state, has_state

log = logging.getLogger("waymark.tracking")

_TOP_LEVEL = ("event_id", "occurred_at", "page_path", "page_title", "referrer", "duration_ms",
              "load_time_ms", "utm_source", "utm_medium", "utm_campaign")


def client_ip(remote_addr: str | None, forwarded_for: str | None, trusted: int) -> str | None:
    """The client address, trusting ``trusted`` X-Forwarded-For hops (werkzeug ProxyFix's rule)."""
    if trusted and forwarded_for:
        values = forwarded_for.split(",")
        if len(values) >= trusted:
            return values[-trusted].strip() or remote_addr
    return remote_addr


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, unverified (the writer verifies it)."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def client_of(req: Request, settings: Settings) -> items.Client:
    """The raw client facts of a request; only the privacy step reads them, then drops them.

    Read from the WSGI environ (the keys werkzeug's ``EnvironHeaders`` looks up) rather than
    through ``req.headers``, which costs ~2 µs per header: the middleware pays this in every
    host request and the ingestion endpoints in every event they accept.
    """
    environ = req.environ
    return items.client(
        client_ip(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"),
                  settings.trusted_proxies),
        environ.get("HTTP_USER_AGENT"),
        environ.get("HTTP_ORIGIN") or req.host,
        bearer(environ.get("HTTP_AUTHORIZATION")),
    )


def find_state(app: Flask | None = None) -> WaymarkState | None:
    """The Waymark state to track into: ``app``'s, the current app's, or the only one alive."""
    if app is not None:
        return get_state(app)
    if has_app_context() and has_state(current_app):
        return get_state()
    states = WaymarkState.live()
    if len(states) == 1:
        return states[0]
    log.warning("waymark: track() outside an app context with %d Waymark apps; pass app=",
                len(states))
    return None


def _split(data: dict[str, Any]) -> dict[str, Any]:
    """Columns and event_data of a server event. Values often come straight from the
    request (``quest_id`` from the URL), i.e. decoded client text: a NUL there is kept as
    U+FFFD rather than failing the host's request with a ValueError."""
    data = items.storable_data(data)
    body = {key: data.pop(key) for key in _TOP_LEVEL if key in data}
    body["event_data"] = data
    return body


def _submit(state: WaymarkState | None, item: dict[str, Any]) -> bool:
    return state is not None and state.writer.submit(item)


def track(event_type: str, *, user_id: uuid.UUID | str | None = None, app: Flask | None = None,
          **data: Any) -> bool:
    """Record an event from server code (e.g. a job); False when the queue is full.

    ``user_id`` is trusted (it comes from your code, not from a client). Keys such as
    ``page_path`` or ``occurred_at`` fill their columns; the rest go to ``event_data``.
    Raises ValueError (InvalidInput) for an invalid event type or data (a NUL in a string
    is not an error: it is kept as U+FFFD, since such values are often decoded client text).
    """
    received_at = now_utc()
    body = _split(dict(data))
    body["event_type"] = event_type
    event: TrackEvent = validate(TrackEvent, body, now=received_at)
    uid = uuid.UUID(str(user_id)) if user_id is not None else None
    item = items.track_item(event, received_at, None, uid, source="server")
    return _submit(find_state(app), item)


class RequestEvent:
    """Events of the current request: user (from its token), path and device come with it."""

    def __init__(self, state: WaymarkState | None, client: items.Client | None,
                 page_path: str | None) -> None:
        self.state = state
        self.client = client
        self.page_path = page_path

    def trigger(self, event_type: str, *, occurred_at: datetime | None = None,
                **data: Any) -> bool:
        """Record ``event_type`` for this request's caller; False when the queue is full."""
        received_at = now_utc()
        body = _split(dict(data))
        body.update(event_type=event_type, occurred_at=occurred_at)
        body.setdefault("page_path", self.page_path)
        event: TrackEvent = validate(TrackEvent, body, now=received_at)
        item = items.track_item(event, received_at, self.client, source="server")
        return _submit(self.state, item)


def request_event() -> RequestEvent:
    """The event recorder of the current request (outside a request: like ``track``)."""
    if not has_request_context():
        return RequestEvent(find_state(), None, None)
    state = find_state()
    client = client_of(request, state.settings) if state is not None else None
    return RequestEvent(state, client, items.storable(request.path))
