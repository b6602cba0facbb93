"""Ingestion endpoints end to end: request → queue → writer → rows, against real PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from ingestion_support import BROWSER, CHROME_UA, GOOGLEBOT_UA, IPHONE_UA, count, flush, writer_of

from backend.services.ingest.bounded_queue import BoundedQueue
from backend.services.privacy import hashing, salts

TRACK = "/api/analytics/activity/track"


def test_track_stores_one_event_with_reduced_device_and_no_raw_data(
        client: FlaskClient, app: Flask, conn: psycopg.Connection[Any]) -> None:
    event_id = uuid.uuid4()
    response = client.post(TRACK, json={
        "event_type": "quest_viewed", "event_id": str(event_id), "page_path": "/quests/7",
        "page_title": "Quest 7", "duration_ms": 1200, "load_time_ms": 300,
        "event_data": {"quest_id": "q7", "quest_title": "Bridges"}},
        headers={"User-Agent": IPHONE_UA})
    assert response.status_code == 202 and response.get_json() == {"accepted": 1}
    flush(app)
    row = conn.execute(
        "SELECT event_type, event_category, page_path, browser, os, device_type, user_id, "
        "visitor_hash, network_hash, session_id, source, event_data->>'quest_id' "
        "FROM user_activity_events WHERE event_id = %s", (event_id,)).fetchone()
    assert row is not None
    (etype, category, path, browser, os_, device, user_id, visitor, network, session, source,
     quest) = row
    assert (etype, category, path, quest, source) == ("quest_viewed", "quest", "/quests/7", "q7",
                                                      "client")
    assert (browser, os_, device) == ("Mobile Safari", "iOS", "mobile")
    assert user_id is None and network is None and len(visitor) == hashing.HASH_BYTES
    assert session is not None


def test_the_same_event_id_is_stored_once(client: FlaskClient, app: Flask,
                                          conn: psycopg.Connection[Any]) -> None:
    event = {"event_type": "page_view", "event_id": str(uuid.uuid4()), "page_path": "/"}
    for _ in range(3):
        assert client.post(TRACK, json=event, headers=BROWSER).status_code == 202
    flush(app)
    client.post("/api/analytics/activity/batch", json={"events": [event, event]}, headers=BROWSER)
    flush(app)
    assert count(conn, "user_activity_events") == 1
    assert count(conn, "user_sessions") == 1
    assert conn.execute("SELECT event_count FROM user_sessions").fetchone() == (1,)


def test_a_crawler_is_not_stored_and_is_counted(client: FlaskClient, app: Flask,
                                                conn: psycopg.Connection[Any]) -> None:
    for ua in (GOOGLEBOT_UA, "python-requests/2.31", "curl/8.4.0"):
        client.post(TRACK, json={"event_type": "page_view"}, headers={"User-Agent": ua})
    assert client.post("/api/analytics/sessions", json={},
                       headers={"User-Agent": GOOGLEBOT_UA}).status_code == 204
    flush(app)
    assert count(conn, "user_activity_events") == 0
    assert count(conn, "user_sessions") == 0
    dropped = writer_of(app).stats()["dropped"]
    assert sum(v for k, v in dropped.items() if k.startswith("crawler:")) == 4


def test_user_comes_from_the_token_never_from_the_body(
        client: FlaskClient, app: Flask, conn: psycopg.Connection[Any], auth: Any) -> None:
    real, forged = uuid.uuid4(), uuid.uuid4()
    body = {"event_type": "badge_earned", "user_id": str(forged), "role": "admin",
            "event_data": {"badge_id": "b1"}}
    client.post(TRACK, json=body, headers={**BROWSER, **auth.header(real)})
    client.post(TRACK, json=body, headers=BROWSER)
    client.post(TRACK, json=body, headers={**BROWSER, "Authorization": "Bearer not-a-jwt"})
    flush(app)
    users = [r[0] for r in conn.execute(
        "SELECT user_id FROM user_activity_events ORDER BY user_id NULLS LAST")]
    assert users == [real, None, None]
    assert writer_of(app).stats()["invalid_tokens"] == 1


def test_errors_are_grouped_and_mark_the_session(client: FlaskClient, app: Flask,
                                                 conn: psycopg.Connection[Any]) -> None:
    client.post(TRACK, json={"event_type": "page_view", "page_path": "/a"}, headers=BROWSER)
    for n in (3, 4):
        assert client.post("/api/analytics/errors", json={
            "error_type": "javascript_error", "message": f"Cannot read properties of undefined "
            f"(reading 'x') at item {n}", "stack": f"TypeError\n    at render (app.{n}abcdef1.js:1:{n})",
            "component_name": "QuestCard", "page_path": "/a"}, headers=BROWSER).status_code == 202
    flush(app)
    groups = conn.execute("SELECT occurrences, users_affected FROM error_groups").fetchall()
    assert groups == [(2, 1)]
    assert count(conn, "error_events", "session_id IS NOT NULL AND group_id IS NOT NULL") == 2
    assert conn.execute("SELECT has_error FROM user_sessions").fetchall() == [(True,)]


def test_session_ping_records_one_launch(client: FlaskClient, app: Flask,
                                         conn: psycopg.Connection[Any]) -> None:
    assert client.post("/api/analytics/sessions", data='{"page_path": "/home"}',
                       content_type="text/plain", headers=BROWSER).status_code == 202
    flush(app)
    client.post(TRACK, json={"event_type": "page_view", "page_path": "/next"}, headers=BROWSER)
    flush(app)
    rows = conn.execute("SELECT is_app_launch, entry_page, exit_page, page_count "
                        "FROM user_sessions").fetchall()
    assert rows == [(True, "/home", "/next", 1)]


def test_collect_and_measure_share_the_network_hash(
        client: FlaskClient, app: Flask, conn: psycopg.Connection[Any]) -> None:
    assert client.post("/api/analytics/collect", json={
        "url": "https://learn.example/start?utm_source=news&utm_campaign=fall&email=a@b.c",
        "consent": True}, headers=BROWSER).status_code == 202
    assert client.post("/api/analytics/measure", json={
        "event": "first_game_open", "storefront": "web", "user_id": "player-42"},
        headers={"User-Agent": IPHONE_UA}).status_code == 202
    flush(app)
    rows = conn.execute(
        "SELECT event_type, page_path, utm_source, utm_campaign, network_hash, event_data, "
        "user_id FROM user_activity_events ORDER BY event_type DESC").fetchall()
    (v_type, v_path, v_src, v_camp, v_net, v_data, _), (c_type, _, _, _, c_net, c_data, c_uid) = rows
    assert (v_type, v_path, v_src, v_camp) == ("landing_visit", "/start", "news", "fall")
    assert v_net is not None and v_net == c_net
    assert c_type == "conversion" and c_uid is None
    assert c_data["conversion"] == "first_game_open" and c_data["storefront"] == "web"
    assert "player-42" not in str(c_data) and len(c_data["user_ref"]) == 32
    assert "a@b.c" not in str(v_data)


def test_visitor_hash_uses_the_period_salt_and_the_trusted_client_address(
        app_config: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    from backend import create_app

    app_config["WAYMARK_TRUSTED_PROXIES"] = 1
    application = create_app(app_config)
    try:
        client = application.test_client()
        headers = {"User-Agent": CHROME_UA, "Origin": "https://learn.example",
                   "X-Forwarded-For": "198.51.100.9, 203.0.113.5"}
        client.post(TRACK, json={"event_type": "page_view"}, headers=headers)
        flush(application)
        stored = conn.execute("SELECT visitor_hash FROM user_activity_events").fetchone()
        salt = conn.execute("SELECT salt FROM tracking_salts").fetchone()
        assert stored is not None and salt is not None
        assert bytes(stored[0]) == hashing.visitor_hash_for_client(
            bytes(salt[0]), "https://learn.example", "203.0.113.5", CHROME_UA)
        assert count(conn, "privacy_audit", "action = 'salt_created'") == 1
        assert salts.SALT_BYTES == len(bytes(salt[0]))
    finally:
        application.extensions["waymark"].close()


def queued_ack(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAYMARK_ACK=queued for this app: 202 once queued (tests/routes/test_durable_ack.py
    covers the default, 202 once committed)."""
    state = app.extensions["waymark"]
    monkeypatch.setattr(state, "settings", replace(state.settings, ack="queued"))


def test_queue_full_answers_503_with_retry_after(client: FlaskClient, app: Flask,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    writer = writer_of(app)
    queued_ack(app, monkeypatch)  # what is tested here is the queue, not the commit wait
    monkeypatch.setattr(writer, "autostart", False)  # no thread: nothing drains the queue
    monkeypatch.setattr(writer, "_items", BoundedQueue(2))
    statuses = [client.post(TRACK, json={"event_type": "page_view"}, headers=BROWSER).status_code
                for _ in range(3)]
    assert statuses == [202, 202, 503]
    response = client.post("/api/analytics/activity/batch",
                           json={"events": [{"event_type": "page_view"}]}, headers=BROWSER)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert writer.stats()["dropped"]["queue_full"] == 2  # the single event, then the batch's


def test_a_batch_is_queued_whole_or_not_at_all(client: FlaskClient, app: Flask,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    writer = writer_of(app)
    queued_ack(app, monkeypatch)  # what is tested here is the queue, not the commit wait
    monkeypatch.setattr(writer, "autostart", False)  # no thread: nothing drains the queue
    monkeypatch.setattr(writer, "_items", BoundedQueue(3))
    assert client.post(TRACK, json={"event_type": "page_view"}, headers=BROWSER).status_code == 202
    three = {"events": [{"event_type": "page_view"}] * 3}
    response = client.post("/api/analytics/activity/batch", json=three, headers=BROWSER)
    assert response.status_code == 503  # 2 places left for 3 events: none of them is queued
    assert writer._items.qsize() == 1
    two = {"events": [{"event_type": "page_view"}, {"event_type": "Bad Type"},
                      {"event_type": "quest_viewed"}]}
    response = client.post("/api/analytics/activity/batch", json=two, headers=BROWSER)
    assert response.status_code == 202
    assert response.get_json()["accepted"] == 2
    assert [r["index"] for r in response.get_json()["rejected"]] == [1]
    assert writer._items.qsize() == 3
    assert writer.stats()["accepted"] == 3


def test_cors_only_for_allowed_origins(app_config: dict[str, Any]) -> None:
    from backend import create_app

    app_config["WAYMARK_ALLOWED_ORIGINS"] = "https://learn.example"
    application = create_app(app_config)
    try:
        client = application.test_client()
        ok = client.options(TRACK, headers={"Origin": "https://learn.example",
                                            "Access-Control-Request-Method": "POST"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://learn.example"
        assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
        other = client.post(TRACK, json={"event_type": "x"},
                            headers={"Origin": "https://evil.example", **BROWSER})
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        application.extensions["waymark"].close()


def test_health_shows_the_writer_counters(client: FlaskClient, app: Flask, auth: Any) -> None:
    client.post(TRACK, json={"event_type": "page_view"}, headers=BROWSER)
    flush(app)
    writer = client.get("/api/analytics/health",
                        headers=auth.header(uuid.uuid4(), "admin")).get_json()["writer"]
    assert writer["accepted"] == 1 and writer["written"] == 1 and writer["queue_depth"] == 0


def test_query_strings_and_fragments_are_never_stored(client: FlaskClient,
                                                      conn: psycopg.Connection[Any]) -> None:
    """Where e-mail addresses and tokens travel: page paths, referrers and API endpoints keep
    their path only, so neither the rows nor the rollups copied from them carry the query."""
    api = "/api/analytics"
    secret = "?email=kid%40example.com&token=abc#section"
    assert client.post(f"{api}/activity/track", headers=BROWSER, json={
        "event_type": "page_view", "page_path": f"/quests{secret}",
        "referrer": f"https://search.example/results{secret}"}).status_code == 202
    assert client.post(f"{api}/errors", headers=BROWSER, json={
        "message": "boom", "page_path": f"/quests{secret}",
        "api_endpoint": f"/api/quests/1{secret}"}).status_code == 202
    assert client.post(f"{api}/sessions", headers=BROWSER, json={
        "page_path": f"/home{secret}", "referrer": f"https://a.example/{secret}"}
                       ).status_code == 202
    rows = conn.execute("SELECT page_path, referrer FROM user_activity_events "
                        "WHERE event_type = 'page_view'").fetchall()
    assert rows == [("/quests", "https://search.example/results")]
    assert conn.execute("SELECT page_path, api_endpoint FROM error_events").fetchall() == [
        ("/quests", "/api/quests/1")]
    assert sorted(conn.execute("SELECT entry_page FROM user_sessions").fetchall()) == [
        ("/home",), ("/quests",)]


def test_a_body_the_host_app_already_read_is_still_ingested(client: FlaskClient, app: Flask,
                                                            conn: psycopg.Connection[Any]) -> None:
    """A host app's own hook that reads the body first (``get_data(cache=True)``, as a
    logging or signing middleware does) must not leave Waymark an empty body."""
    @app.before_request
    def host_reads_the_body() -> None:
        request.get_data(cache=True)

    event = {"event_type": "page_view", "event_id": str(uuid.uuid4()), "page_path": "/"}
    response = client.post("/api/analytics/activity/batch", json={"events": [event]},
                           headers=BROWSER)
    assert response.status_code == 202, response.get_json()
    flush(app)
    assert count(conn, "user_activity_events") == 1
