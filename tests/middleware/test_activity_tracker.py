"""The request middleware in a host app: what it records, what it skips, and that it never hurts."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask, abort, request
from ingestion_support import BROWSER, count, flush, writer_of

from backend import Waymark, request_event
from backend.config import Settings
from backend.middleware import activity_tracker
from backend.services.ingest import items
from backend.tracking import bearer, client_ip, client_of


def host_app(config: dict[str, Any], **options: Any) -> Flask:
    app = Flask("host", static_folder=None)
    app.config.update(config)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500 as in production

    @app.post("/quests/<quest_id>/start")
    def start_quest(quest_id: str) -> dict[str, str]:
        request_event().trigger("quest_viewed", quest_id=quest_id, quest_title="Bridges")
        return {"started": quest_id}

    @app.get("/profile")
    def profile() -> str:
        return "me"

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError("kaboom in the host")

    @app.get("/unavailable")
    def unavailable() -> str:
        abort(503)

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/odd-status/<int:code>")
    def odd_status(code: int) -> tuple[str, int]:
        return "odd", code

    Waymark(app, **options)
    return app


@pytest.fixture
def host(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = host_app(app_config, url_rules={"POST /quests/<quest_id>/start": "quest_started"})
    yield app
    app.extensions["waymark"].close()


def test_requests_become_server_events_classified_by_url_rules(
        host: Flask, conn: psycopg.Connection[Any], auth: Any) -> None:
    client = host.test_client()
    user = uuid.uuid4()
    assert client.post("/quests/q9/start", headers={**BROWSER, **auth.header(user)}).json == {
        "started": "q9"}
    assert client.get("/profile", headers=BROWSER).data == b"me"
    flush(host)
    rows = conn.execute(
        "SELECT event_type, source, page_path, status_code, event_data->>'quest_id', user_id, "
        "duration_ms IS NOT NULL FROM user_activity_events ORDER BY event_type").fetchall()
    assert rows == [
        ("api_request", "server", "/profile", 200, None, None, True),
        ("quest_started", "server", "/quests/q9/start", 200, "q9", user, True),
        ("quest_viewed", "server", "/quests/q9/start", None, "q9", user, False),
    ]


def test_a_percent_encoded_nul_in_a_host_path_is_stored_not_dead_lettered(
        host: Flask, conn: psycopg.Connection[Any]) -> None:
    """The host's path and arguments are decoded client text: %00 is a NUL PostgreSQL
    refuses. The request must still be recorded (with U+FFFD), not poison a batch."""
    client = host.test_client()
    assert client.post("/quests/a%00b/start", headers=BROWSER).status_code == 200
    client.get("/profile%00x", headers=BROWSER)  # a 404 with a NUL in its path
    flush(host)
    rows = conn.execute("SELECT page_path, event_data->>'quest_id' FROM user_activity_events "
                        "WHERE event_type = 'quest_started'").fetchall()
    assert rows == [("/quests/a\ufffdb/start", "a\ufffdb")]
    assert conn.execute("SELECT count(*) FROM user_activity_events "
                        "WHERE page_path = '/profile\ufffdx'").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM waymark.dead_letters").fetchone() == (0,)


def test_static_health_and_waymark_routes_are_not_recorded(
        app_config: dict[str, Any], conn: psycopg.Connection[Any], tmp_path: Any) -> None:
    (tmp_path / "app.js").write_text("1")
    app = host_app(app_config)
    app.static_folder = str(tmp_path)
    app.add_url_rule("/static/<path:filename>", endpoint="static",
                     view_func=app.send_static_file)
    try:
        client = app.test_client()
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/api/analytics/health").status_code == 200
        client.post("/api/analytics/activity/track", json={"event_type": "page_view"},
                    headers=BROWSER)
        flush(app)
        assert [r[0] for r in conn.execute("SELECT source FROM user_activity_events")] == [
            "client"]
    finally:
        app.extensions["waymark"].close()


def test_5xx_and_exceptions_add_api_errors_without_changing_the_answer(
        host: Flask, conn: psycopg.Connection[Any]) -> None:
    client = host.test_client()
    assert client.get("/broken", headers=BROWSER).status_code == 500
    assert client.get("/unavailable", headers=BROWSER).status_code == 503
    assert client.get("/profile", headers=BROWSER).status_code == 200
    flush(host)
    errors = conn.execute("SELECT error_type, source, status_code, api_endpoint, "
                          "message LIKE 'RuntimeError: kaboom%%', stack IS NOT NULL "
                          "FROM error_events ORDER BY status_code").fetchall()
    assert errors == [("api_error", "server", 500, "/broken", True, True),
                      ("api_error", "server", 503, "/unavailable", False, False)]
    assert count(conn, "user_activity_events", "status_code >= 500") == 2


def test_a_status_code_outside_http_is_stored_as_unknown_not_wrapped(
        host: Flask, conn: psycopg.Connection[Any]) -> None:
    """65,736 would wrap to 200 in a binary smallint; 700 would break the column's CHECK."""
    client = host.test_client()
    for code in (65736, 700, 299):
        assert client.get(f"/odd-status/{code}", headers=BROWSER).status_code == code
    flush(host)
    rows = conn.execute("SELECT event_data->>'endpoint', status_code FROM user_activity_events "
                        "ORDER BY status_code NULLS FIRST").fetchall()
    assert rows == [("/odd-status/<int:code>", None), ("/odd-status/<int:code>", None),
                    ("/odd-status/<int:code>", 299)]
    assert count(conn, "waymark.dead_letters") == 0
    assert count(conn, "error_events") == 0


def test_a_tracking_bug_never_fails_the_request(host: Flask,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise ValueError("tracking bug")

    monkeypatch.setattr(activity_tracker, "client_of", broken)
    client = host.test_client()
    assert client.get("/profile").data == b"me"
    assert client.get("/broken").status_code == 500
    assert activity_tracker_of(host).failures == 3  # both events and the api_error: all swallowed


def activity_tracker_of(app: Flask) -> activity_tracker.ActivityTracker:
    hook = app.after_request_funcs[None][0]
    tracker: activity_tracker.ActivityTracker = hook.__self__  # type: ignore[attr-defined]
    return tracker


@pytest.mark.parametrize("headers", [
    {},
    {"User-Agent": "UA/1", "Origin": "https://app.example", "Authorization": "Bearer t0k",
     "X-Forwarded-For": "203.0.113.9, 10.0.0.2"},
    {"User-Agent": "UA/2", "Authorization": "Basic abc", "X-Forwarded-For": "203.0.113.9"},
])
@pytest.mark.parametrize("trusted", [0, 1, 2])
def test_client_of_reads_the_same_facts_as_werkzeugs_headers(
        headers: dict[str, str], trusted: int) -> None:
    """``client_of`` reads the environ directly; werkzeug's header view is the reference."""
    settings = Settings(trusted_proxies=trusted)
    app = Flask("plain")
    with app.test_request_context("/p", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.7"}):
        req = activity_tracker._current_request()
        via_headers = items.client(
            client_ip(req.remote_addr, req.headers.get("X-Forwarded-For"), trusted),
            req.headers.get("User-Agent"), req.headers.get("Origin") or req.host,
            bearer(req.headers.get("Authorization")))
        assert client_of(req, settings) == via_headers


def test_an_unreachable_database_does_not_slow_the_host(app_config: dict[str, Any]) -> None:
    app_config.update(WAYMARK_DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",
                      WAYMARK_QUEUE_SIZE=50, WAYMARK_BATCH_SIZE=10)
    app = host_app(app_config)
    try:
        client = app.test_client()
        slowest = 0.0
        for _ in range(300):
            started = time.perf_counter()
            assert client.get("/profile", headers=BROWSER).data == b"me"
            slowest = max(slowest, time.perf_counter() - started)
        stats = writer_of(app).stats()
        # never waits on the database: a blocking connect would take >= 1 s here
        assert slowest < 0.25, slowest
        assert stats["dropped"].get("queue_full", 0) > 0 and stats["written"] == 0
    finally:
        app.extensions["waymark"].close(timeout=0.5)


def test_personal_data_in_a_host_exception_is_scrubbed_before_it_is_stored(
        app_config: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    """A host 5xx's message and traceback can name a person (a lookup that failed for an
    address): stored with the anonymization rules applied, in the report and its group."""
    app = host_app(app_config)

    @app.get("/accounts/lookup")
    def lookup() -> str:
        raise LookupError("no account for ann.lee@example.org (tel. +44 20 7946 0958)")

    try:
        assert app.test_client().get("/accounts/lookup", headers=BROWSER).status_code == 500
        flush(app)
    finally:
        app.extensions["waymark"].close()
    message, stack = conn.execute("SELECT message, stack FROM error_events").fetchone()
    group = conn.execute("SELECT message FROM error_groups").fetchone()[0]
    for text in (message, stack, group):
        assert "ann.lee" not in text and "7946" not in text, text
    assert message == "LookupError: no account for [email] (tel. [phone])"


def test_flasks_exception_line_keeps_the_path_as_sent_with_ids_masked(
        host: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """Flask logs ``Exception on <path> [METHOD]`` with the decoded path: a ``%0A`` forged
    a second log line, and a user id in the path outlived the user's forget."""
    user = "6f1d3f4e-8a8b-4c2e-9d41-5a7e0c3b2a10"
    host.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: Flask logs, answers 500

    @host.before_request
    def explode() -> None:  # before routing's 404: any path, a decoded newline included
        if request.path.startswith("/explode/"):
            raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR, logger=host.logger.name):
        assert host.test_client().get(f"/explode/{user}%0AINFO forged line").status_code == 500
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Exception")]
    assert lines == ["Exception on /explode/<id>%0AINFO%20forged%20line [GET]"], lines
