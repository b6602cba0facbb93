"""End to end: the React hook in Debian's headless Chromium, against the real Flask app and PostgreSQL.

The demo page (``frontend-hook/e2e/demo.tsx``, built by ``npm run build:e2e`` into
``frontend-hook/e2e-dist/``) is served by the Waymark app itself, so the hook posts to
the same origin's ``/api/analytics``. The browser walks two routes of its pushState
router, sends a custom event, breaks a component inside ``ActivityErrorBoundary`` and
hides the tab; the rows must then be in ``user_activity_events`` and ``error_events``.
It runs twice: as an anonymous visitor (the hidden tab's events go by ``sendBeacon``) and
signed in (the demo's ``getToken`` returns a test JWT: everything goes by keepalive
``fetch`` with ``Authorization`` and every row names the user).

Needs: ``/usr/bin/chromium`` (``make e2e-deps``), the ``playwright`` Python package
(driving that Chromium; no browser download), and the built demo (``make hook``).
Each missing piece skips the test with the reason.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask, abort, send_from_directory
from psycopg.rows import dict_row
from werkzeug.serving import make_server

from backend.state import get_state

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "frontend-hook" / "e2e-dist"
CHROMIUM = os.environ.get("WAYMARK_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
# A regular desktop Chrome: the stock "HeadlessChrome" agent could rightly be taken for a bot,
# and crawlers are never stored.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
DB_WAIT_SECONDS = 15.0
SEND_WAIT_SECONDS = 10.0

# Hide the tab the way a browser does before it throttles or discards it.
HIDE_TAB = """() => {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => true })
  document.dispatchEvent(new Event('visibilitychange'))
}"""


def _requirements() -> str | None:
    """Why the test cannot run here, or None."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} not found: run `make e2e-deps` (apt-get install chromium)"
    if not (DIST / "index.html").is_file() or not (DIST / "app.js").is_file():
        return f"{DIST} not built: run `make hook` (or `cd frontend-hook && npm ci && npm run build:e2e`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (pip install playwright; no browser download needed)"
    return None


@pytest.fixture
def demo_server(app: Flask) -> Iterator[str]:
    """The Waymark app plus the demo page, served on 127.0.0.1 on a free port."""
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    needed = {"/api/analytics/activity/batch", "/api/analytics/errors"}
    if not needed <= rules:
        pytest.skip(f"ingestion endpoints not installed in the app yet: {sorted(needed - rules)}")

    def demo_page(sub: str = "") -> Any:
        return send_from_directory(DIST, "index.html")

    def demo_asset(name: str) -> Any:
        if name != "app.js":
            abort(404)
        return send_from_directory(DIST, name, mimetype="text/javascript")

    app.add_url_rule("/demo/", "e2e_demo_root", demo_page)
    app.add_url_rule("/demo/<path:sub>", "e2e_demo_page", demo_page)
    app.add_url_rule("/demo-assets/<path:name>", "e2e_demo_asset", demo_asset)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _flush_writer(app: Flask, timeout: float = 5.0) -> None:
    """Have Waymark's event writer (asynchronous) write what it holds."""
    get_state(app).writer.flush(timeout)


def _poll(fetch: Callable[[], Any], done: Callable[[Any], bool], seconds: float) -> Any:
    """Call ``fetch`` until ``done(result)`` or the time is up; return the last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _rows(db_url: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_hook_in_chromium_records_pages_exits_custom_event_and_error(
    app: Flask, demo_server: str, db_url: str, auth: Any, signed_in: bool
) -> None:
    """Anonymous: the hidden tab's events go by sendBeacon and name no user. Signed in (a
    token from getToken): every request, the hidden tab's too, goes by keepalive fetch with
    the bearer token, and every row names the user."""
    from playwright.sync_api import Request, sync_playwright

    user_id = str(uuid.uuid4()) if signed_in else None
    token = auth.token(user_id) if signed_in else None
    hide_transport = "fetch" if signed_in else "ping"  # ping = navigator.sendBeacon
    authorizations: set[str | None] = set()

    sent_ids: set[str] = set()
    sent_events: list[tuple[str, str, str]] = []  # (event_type, page_path, resource type)
    posted: list[str] = []
    console_errors: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and "/api/analytics/" in request.url:
            posted.append(request.url.rsplit("/api/analytics/", 1)[1])
            authorizations.add(request.headers.get("authorization"))
            if request.url.endswith("/activity/batch"):
                body = json.loads(request.post_data or "{}")
                for event in body.get("events", []):
                    sent_ids.add(event["event_id"])
                    sent_events.append((event["event_type"], event.get("page_path", ""),
                                        request.resource_type))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(user_agent=USER_AGENT)
            if signed_in:  # what the demo's getToken returns
                page.add_init_script(f"window.waymarkDemoToken = {json.dumps(token)}")
            page.on("request", on_request)
            page.on("pageerror", lambda e: console_errors.append(str(e)))

            page.goto(f"{demo_server}/demo/home")
            page.wait_for_selector("text=Home")
            page.wait_for_timeout(1500)  # > 1 s on /demo/home: its page_exit carries duration_ms

            page.click("#link-quests")  # pushState route change
            page.wait_for_selector("text=Quest board")
            assert page.evaluate("location.pathname") == "/demo/quests"
            page.click("#custom")
            page.click("#break")  # QuestBoard throws inside ActivityErrorBoundary
            page.wait_for_selector("#fallback")
            page.wait_for_timeout(1300)

            page.evaluate(HIDE_TAB)  # page_exit for /demo/quests, sent at once
            _poll(lambda: list(sent_events),
                  lambda sent: any(e[:2] == ("page_exit", "/demo/quests") for e in sent),
                  SEND_WAIT_SECONDS)
            hidden_exit = [e for e in sent_events if e[:2] == ("page_exit", "/demo/quests")]
            assert hidden_exit, f"hiding the tab sent no page_exit: {sent_events}"
            assert hidden_exit[0][2] == hide_transport, sent_events
            page.close()  # pagehide: nothing may be left to send, nothing may break
        finally:
            browser.close()

    assert "errors" in posted, f"no error report was posted; requests: {posted}"
    # Every request carried the token when there was one, and none otherwise.
    assert authorizations == ({f"Bearer {token}"} if token else {None}), authorizations
    _flush_writer(app)

    def client_events() -> list[dict[str, Any]]:
        return _rows(db_url, """
            SELECT event_id::text AS event_id, event_type, event_category, page_path, page_title, referrer,
                   duration_ms, load_time_ms, event_data, source, visitor_hash, user_id
              FROM user_activity_events
             WHERE source = 'client'
             ORDER BY occurred_at, event_type""")

    def has_all(events: list[dict[str, Any]]) -> bool:
        kinds = {(e["event_type"], e["page_path"]) for e in events}
        return {("page_view", "/demo/home"), ("page_view", "/demo/quests"),
                ("page_exit", "/demo/home"), ("page_exit", "/demo/quests"),
                ("demo_button_clicked", "/demo/quests")} <= kinds

    events = _poll(client_events, has_all, DB_WAIT_SECONDS)
    summary = [(e["event_type"], e["page_path"], e["duration_ms"]) for e in events]
    by_kind = {(e["event_type"], e["page_path"]): e for e in events}

    # Page views of both routes; the first one has the Navigation Timing load time.
    home, quests = by_kind.get(("page_view", "/demo/home")), by_kind.get(("page_view", "/demo/quests"))
    assert home is not None and quests is not None, summary
    assert home["load_time_ms"] is not None and home["load_time_ms"] > 0, home
    assert quests["load_time_ms"] is None
    assert quests["referrer"] == "/demo/home"
    assert (home["page_title"], quests["page_title"]) == ("Demo home", "Demo quests")
    assert sum(e["event_type"] == "page_view" for e in events) == 2, summary

    # Time on page, only past one second: /demo/home by the route change, /demo/quests by the hide.
    exit_home = by_kind.get(("page_exit", "/demo/home"))
    exit_quests = by_kind.get(("page_exit", "/demo/quests"))
    assert exit_home is not None and exit_quests is not None, summary
    assert 1000 < exit_home["duration_ms"] < 60_000, exit_home
    assert 1000 < exit_quests["duration_ms"] < 60_000, exit_quests

    # The custom event, with its data, in the `custom` category.
    custom = by_kind.get(("demo_button_clicked", "/demo/quests"))
    assert custom is not None, summary
    assert custom["event_data"]["colour"] == "teal" and custom["event_data"]["clicks"] == 1
    assert custom["event_category"] == "custom"

    # The client's event ids are the stored ones (the dedupe key); all from one visitor,
    # named only when the request carried the user's token.
    stored_ids = {e["event_id"] for e in events}
    assert sent_ids and sent_ids <= stored_ids, (sent_ids - stored_ids)
    assert {str(e["user_id"]) if e["user_id"] else None for e in events} == {user_id}
    assert len({e["visitor_hash"] for e in events}) == 1

    # The error boundary's report.
    def js_errors() -> list[dict[str, Any]]:
        return _rows(db_url, """
            SELECT error_type, message, stack, component_name, page_path, user_id
              FROM error_events WHERE error_type = 'javascript_error'""")

    errors = _poll(js_errors, bool, DB_WAIT_SECONDS)
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["message"] == "quest board exploded"
    assert error["component_name"] == "QuestBoard"
    assert error["page_path"] == "/demo/quests"
    assert "QuestBoard" in (error["stack"] or "")
    assert (str(error["user_id"]) if error["user_id"] else None) == user_id
    assert console_errors == [], console_errors  # the boundary caught it: nothing uncaught

