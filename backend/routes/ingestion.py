"""Ingestion endpoints (docs/ingestion.md): validate on the request thread, queue, answer 202.

Bodies are ``application/json`` or ``text/plain`` JSON (``navigator.sendBeacon``). The user
of an event comes only from a valid ``Authorization: Bearer`` token, checked by the writer;
an invalid or expired token is ignored and the event is stored anonymously (a page-exit
beacon often carries a token that just expired; refusing it would lose the event). Body
fields such as ``user_id`` or ``role`` are ignored.

202 means stored: with ``WAYMARK_ACK=commit`` (the default) a request waits until the
writer has committed its events (``Receipt``), at most ``WAYMARK_ACK_TIMEOUT`` seconds;
a full queue, a database that cannot take them in time or a writer shutting down answers
503 + Retry-After instead, and the client keeps the events. ``WAYMARK_ACK=queued`` answers
as soon as they are queued (faster, at-most-once if the process crashes).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from backend.clock import now_utc
from backend.request_body import BodyTimeout, read_within
from backend.services.ingest import items
from backend.services.ingest.receipts import Receipt
from backend.services.ingest.validation import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    Batch,
    Collect,
    ErrorReport,
    InvalidInput,
    Measure,
    SessionPing,
    TrackEvent,
    parse_json,
    validate,
)
from backend.state import WaymarkState, get_state
from backend.tracking import client_of

bp = Blueprint("waymark_ingestion", __name__, url_prefix="/api/analytics")

CONTENT_TYPES = ("application/json", "text/plain")
RETRY_AFTER_SECONDS = "2"
ACCEPTED_ONE = b'{"accepted":1}\n'  # the hot path's answer, encoded once


@bp.errorhandler(InvalidInput)
def invalid_input(exc: InvalidInput) -> ResponseReturnValue:
    """Every refusal is a JSON ``{"error": ...}`` naming the field."""
    return jsonify(error=str(exc)), exc.status


@bp.after_request
def cors(response: Response) -> Response:
    """Allow the origins of ``WAYMARK_ALLOWED_ORIGINS`` (``*`` for any) to post events."""
    origin = request.headers.get("Origin")
    if origin:
        allowed = get_state().settings.allowed_origins
        if "*" in allowed or origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
                response.headers["Access-Control-Max-Age"] = "86400"
    return response


@bp.after_request
def tell_the_developer(response: Response) -> Response:
    """In development only, say why an accepted event will not be stored.

    Crawlers are answered like everyone else and dropped by the privacy step, so a newcomer
    testing with curl (whose user agent is on the crawler list) sees 202 and no rows. A
    header and a log line explain it, only in development mode: in production the same
    header would tell bots they were detected.
    """
    state = get_state()
    if not state.settings.dev_mode or request.method != "POST" \
            or response.status_code not in (202, 204):
        return response
    reason = state.writer.crawler_reason(request.environ.get("HTTP_USER_AGENT"))
    if reason is not None:
        response.headers["X-Waymark-Dropped"] = f"crawler ({reason}); development mode only"
        current_app.logger.warning(
            "waymark: %s accepted but will be dropped: the user agent is a crawler (%s); "
            "send a browser User-Agent to see it stored", request.path, reason)
    return response


def _body() -> Any:
    """The parsed JSON body, refusing a wrong content type, an oversized or invalid body, and
    one that does not arrive within ``WAYMARK_BODY_READ_TIMEOUT`` (408: a slow upload must
    not keep a server thread, see ``backend.request_body``)."""
    if request.mimetype not in CONTENT_TYPES:
        raise InvalidInput("body: send application/json or text/plain JSON", status=415)
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise InvalidInput(f"body: larger than 64 KiB ({MAX_BODY_BYTES} bytes)", status=413)
    state = get_state()
    seconds = state.settings.body_read_timeout
    if length is not None:  # also a body the host app's own hook already read and cached
        def read() -> bytes:
            return request.get_data(cache=False)
    else:  # chunked: read at most the limit (parse_json refuses more)
        def read() -> bytes:
            return request.stream.read(MAX_BODY_BYTES + 1)
    try:
        raw = read_within(read, seconds, request.environ, state.body_watchdog)
    except BodyTimeout:
        raise InvalidInput(f"body: not received within {seconds:g} s; send the whole body at "
                           "once", status=408) from None
    return parse_json(raw)


def _unavailable(reason: str) -> ResponseReturnValue:
    response = jsonify(error=f"{reason}; nothing was accepted, retry after a moment")
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response, 503


def _store(state: WaymarkState, queued: list[dict[str, Any]]) -> ResponseReturnValue | None:
    """Queue ``queued`` and, in commit mode, wait until they are stored; None when they are
    (answer 202), else the 503 to answer."""
    writer = state.writer
    if state.settings.ack != "commit":
        return None if writer.submit_all(queued) else _unavailable("the event queue is full")
    receipt = Receipt(len(queued))
    if not writer.submit_all(queued, receipt):
        return _unavailable("the event queue is full")
    if receipt.wait(state.settings.ack_timeout):
        return None
    writer.withdraw(queued)
    return _unavailable("the events could not be stored in time")


def _submit_one(state: WaymarkState, item: dict[str, Any]) -> ResponseReturnValue:
    refused = _store(state, [item])
    if refused is not None:
        return refused
    return Response(ACCEPTED_ONE, status=202, mimetype="application/json")


@bp.post("/activity/track")
def track() -> ResponseReturnValue:
    """One event."""
    state = get_state()
    now = now_utc()
    event = validate(TrackEvent, _body(), now=now)
    return _submit_one(state, items.track_item(event, now, client_of(request, state.settings)))


@bp.post("/activity/batch")
def batch() -> ResponseReturnValue:
    """Up to 100 events: the valid ones are queued, the others listed by index."""
    state = get_state()
    now = now_utc()
    body = _body()
    if isinstance(body, dict) and isinstance(body.get("events"), list) \
            and len(body["events"]) > MAX_BATCH:
        raise InvalidInput(f"events: at most {MAX_BATCH} events per batch", status=413)
    envelope = validate(Batch, body, now=now)
    client = client_of(request, state.settings)
    valid, rejected = [], []
    for index, raw in enumerate(envelope.events):
        try:
            event = validate(TrackEvent, raw, now=now, where=f"events[{index}]")
        except InvalidInput as exc:
            rejected.append({"index": index, "error": str(exc)})
            continue
        valid.append(items.track_item(event, now, client))
    if not valid and rejected:
        return jsonify(error=rejected[0]["error"], accepted=0, rejected=rejected), 400
    refused = _store(state, valid)
    if refused is not None:
        return refused  # not known to be stored: the client resends the whole batch
    return jsonify(accepted=len(valid), rejected=rejected), 202


@bp.post("/errors")
def errors() -> ResponseReturnValue:
    """A frontend error report."""
    state = get_state()
    now = now_utc()
    report = validate(ErrorReport, _body(), now=now)
    return _submit_one(state, items.error_item(report, now, client_of(request, state.settings)))


@bp.post("/sessions")
def sessions() -> ResponseReturnValue:
    """An app-launch ping: one session record per launch; 204 (nothing kept) for a crawler."""
    state = get_state()
    now = now_utc()
    ping = validate(SessionPing, _body(), now=now)
    client = client_of(request, state.settings)
    if state.writer.is_crawler(client["ua"]):
        return "", 204
    return _submit_one(state, items.session_item(ping, now, client))


@bp.post("/collect")
def collect() -> ResponseReturnValue:
    """A landing visit (with the period's network hash for attribution)."""
    state = get_state()
    now = now_utc()
    visit = validate(Collect, _body(), now=now)
    return _submit_one(state, items.collect_item(visit, now, client_of(request, state.settings)))


@bp.post("/measure")
def measure() -> ResponseReturnValue:
    """A conversion, linked to landing visits by the period's network hash."""
    state = get_state()
    now = now_utc()
    conversion = validate(Measure, _body(), now=now)
    return _submit_one(state, items.measure_item(conversion, now,
                                                 client_of(request, state.settings)))
