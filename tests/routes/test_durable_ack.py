"""202 means stored (WAYMARK_ACK=commit, the default): the row is in the table when the
answer arrives; what cannot be stored in time is answered 503 + Retry-After, never 202.
The crash drill (SIGKILL under load) is tests/scripts/test_crash_drill.py."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from ingestion_support import BROWSER, count, writer_of

from backend import create_app
from backend.config import ConfigError
from backend.services.ingest.bounded_queue import BoundedQueue

TRACK = "/api/analytics/activity/track"
BATCH = "/api/analytics/activity/batch"


def test_a_202_means_the_rows_are_already_committed(client: FlaskClient,
                                                    conn: psycopg.Connection[Any]) -> None:
    one = client.post(TRACK, json={"event_type": "page_view", "page_path": "/a"},
                      headers=BROWSER)
    assert one.status_code == 202
    assert count(conn, "user_activity_events") == 1  # no flush(): committed before the 202
    events = [{"event_type": "quest_viewed", "event_data": {"quest_id": f"q{i}"}}
              for i in range(100)]
    many = client.post(BATCH, json={"events": events}, headers=BROWSER)
    assert many.status_code == 202 and many.get_json()["accepted"] == 100
    assert count(conn, "user_activity_events") == 101
    for path, body in (("/api/analytics/errors", {"error_type": "javascript_error",
                                                  "message": "boom"}),
                       ("/api/analytics/sessions", {"page_path": "/"}),
                       ("/api/analytics/collect", {"url": "https://x.example/?utm_source=a"})):
        assert client.post(path, json=body, headers=BROWSER).status_code == 202, path
    assert count(conn, "error_events") == 1
    assert count(conn, "user_sessions") >= 1


def test_concurrent_requests_share_commits_and_all_are_stored(
        app_config: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    """Group commit: 8 threads × 25 single events; every 202 is a stored row, in fewer
    transactions than requests, and nobody waits out the (here 5 s) flush interval."""
    app = create_app({**app_config, "WAYMARK_FLUSH_INTERVAL": 5})
    try:
        _post_concurrently(app, conn)
    finally:
        app.extensions["waymark"].close()


def _post_concurrently(app: Flask, conn: psycopg.Connection[Any]) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def post_many() -> None:
        local = app.test_client()
        for _ in range(25):
            code = local.post(TRACK, json={"event_type": "page_view"}, headers=BROWSER).status_code
            with lock:
                statuses.append(code)

    started = time.monotonic()
    threads = [threading.Thread(target=post_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert statuses == [202] * 200
    assert count(conn, "user_activity_events") == 200
    batches = writer_of(app).stats()["batches"]
    assert batches < 200
    # waiting out the 5 s interval per round would take 25 × 5 = 125 s
    assert elapsed < 30, elapsed


def test_nothing_drains_the_queue_so_the_answer_is_503_and_the_events_are_withdrawn(
        app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        conn: psycopg.Connection[Any]) -> None:
    app = create_app({**app_config, "WAYMARK_ACK_TIMEOUT": 0.3})
    try:
        writer = writer_of(app)
        monkeypatch.setattr(writer, "autostart", False)  # no writer thread: never committed
        monkeypatch.setattr(writer, "_items", BoundedQueue(10))
        answer = app.test_client().post(TRACK, json={"event_type": "page_view"},
                                        headers=BROWSER)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert "could not be stored in time" in answer.get_json()["error"]
        assert writer.stats()["queue_depth"] == 0  # taken back: the client resends it
        assert writer.stats()["withdrawn"] == 1
    finally:
        app.extensions["waymark"].close()
    assert count(conn, "user_activity_events") == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_database_down_answers_503_quickly_then_stores_after_recovery(
        app_config: dict[str, Any], db_url: str, conn: psycopg.Connection[Any]) -> None:
    down = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    app = create_app({**app_config, "WAYMARK_DATABASE_URL": down, "WAYMARK_ACK_TIMEOUT": 0.5})
    try:
        started = time.monotonic()
        answer = app.test_client().post(TRACK, json={"event_type": "page_view",
                                                     "event_id": "6f1c2f4e-8a51-4e6b-9a0e-"
                                                     "0b7c1d2e3f40"}, headers=BROWSER)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert time.monotonic() - started < 3
    finally:
        app.extensions["waymark"].close(timeout=0.5)
    # the client retries the same event against a working server: stored once
    healthy = create_app(app_config)
    try:
        retry = healthy.test_client().post(TRACK, json={
            "event_type": "page_view", "event_id": "6f1c2f4e-8a51-4e6b-9a0e-0b7c1d2e3f40"},
            headers=BROWSER)
        assert retry.status_code == 202
    finally:
        healthy.extensions["waymark"].close()
    assert count(conn, "user_activity_events") == 1


def test_queued_mode_answers_before_the_commit(app_config: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app({**app_config, "WAYMARK_ACK": "queued"})
    try:
        writer = writer_of(app)
        monkeypatch.setattr(writer, "autostart", False)  # nothing will ever commit it
        answer = app.test_client().post(TRACK, json={"event_type": "page_view"},
                                        headers=BROWSER)
        assert answer.status_code == 202  # at-most-once: accepted into memory only
        assert writer.stats()["queue_depth"] == 1
    finally:
        app.extensions["waymark"].close(timeout=0.2)


def test_an_unknown_ack_mode_is_refused_at_start(app_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="WAYMARK_ACK"):
        create_app({**app_config, "WAYMARK_ACK": "sometimes"})
