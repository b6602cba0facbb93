"""The JetStream mode against a real nats-server (our own process, its file store in tmp).

App side: every ingestion endpoint publishes privacy-stepped rows and answers 202 once the
stream acknowledged them; the stream's files never hold the client's IP, user agent or
token. Writer side: ``StreamWriter`` stores them once, also when messages are delivered
again; a forgotten user's messages never become rows; a full stream answers 503.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from ingestion_support import CHROME_UA, count
from nats_support import Nats, RunningWriter, nats_servers
from pg_cluster import free_port

from backend import create_app
from backend.services.ingest import stream
from backend.services.ingest.stream import StreamPublisher
from backend.services.ingest.stream_writer import StreamWriter
from backend.state import get_state

TEST_IP = "203.0.113.77"
TEST_UA = CHROME_UA + " WaymarkProbe/9.9"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[Nats]:
    with nats_servers(tmp_path) as servers:
        yield servers


@pytest.fixture
def js_config(app_config: dict[str, Any], nats_server: Nats) -> dict[str, Any]:
    return {**app_config, "WAYMARK_QUEUE_URL": nats_server.urls,
            "WAYMARK_STREAM_NAME": f"T{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def js_app(js_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(js_config)
    yield application
    get_state(application).close()


def _client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": TEST_IP, "HTTP_USER_AGENT": TEST_UA})
    return client


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        deadline.wait(0.1)
    raise AssertionError("condition not reached in time")


def test_every_endpoint_publishes_and_the_writer_stores_each_row_once(
        js_app: Flask, db_url: str, conn: psycopg.Connection[Any], auth: Any) -> None:
    client = _client(js_app)
    user = uuid.uuid4()
    token = auth.header(user)
    event_id = str(uuid.uuid4())
    answers = [
        client.post("/api/analytics/activity/track", headers=token,
                    json={"event_type": "quest_started", "event_id": event_id,
                          "page_path": "/quests/1", "event_data": {"quest_id": "q1"}}),
        # the client's retry of the same event: acknowledged, stored once
        client.post("/api/analytics/activity/track", headers=token,
                    json={"event_type": "quest_started", "event_id": event_id}),
        client.post("/api/analytics/activity/batch",
                    json={"events": [{"event_type": "page_view", "page_path": f"/p/{i}"}
                                     for i in range(5)]}),
        client.post("/api/analytics/errors", json={"error_type": "javascript_error",
                                                   "message": "x is undefined"}),
        client.post("/api/analytics/sessions", json={"page_path": "/"}),
        client.post("/api/analytics/collect", json={"url": "https://a.example/l?utm_source=nl"}),
        client.post("/api/analytics/measure", json={"event": "first_game_open",
                                                    "user_id": str(user)}),
    ]
    assert [r.status_code for r in answers] == [202] * 7, [r.get_json() for r in answers]
    assert count(conn, "user_activity_events") == 0  # published, not yet written

    settings = get_state(js_app).settings
    with RunningWriter(db_url, settings) as writer:
        wait_for(lambda: writer.counters["batches"] >= 1
                 and count(conn, "user_activity_events") == 8)
        wait_for(lambda: count(conn, "error_events") == 1)
    assert count(conn, "user_activity_events", "event_id = %s", (event_id,)) == 1
    assert count(conn, "user_activity_events", "user_id = %s AND visitor_hash IS NOT NULL",
                 (user,)) == 1
    assert count(conn, "user_sessions", "is_app_launch") == 1
    row = conn.execute("SELECT browser, device_type FROM user_activity_events "
                       "WHERE event_id = %s", (event_id,)).fetchone()
    assert row == ("Chrome", "desktop")


def test_the_stream_files_hold_no_ip_user_agent_or_token(
        js_app: Flask, nats_server: Nats, auth: Any) -> None:
    client = _client(js_app)
    token = auth.token(uuid.uuid4())
    for _ in range(3):
        assert client.post("/api/analytics/activity/track", json={"event_type": "page_view"},
                           headers={"Authorization": f"Bearer {token}"}).status_code == 202
    assert client.post("/api/analytics/collect",
                       json={"url": "https://a.example/"}).status_code == 202
    on_disk = nats_server.store_bytes()
    assert b"page_view" in on_disk  # the scan reads the messages (not an empty store)
    for secret in (TEST_IP, TEST_UA, "WaymarkProbe", token):
        assert secret.encode() not in on_disk, secret


def test_a_redelivered_batch_is_stored_once(js_app: Flask, db_url: str,
                                            conn: psycopg.Connection[Any]) -> None:
    client = _client(js_app)
    assert client.post("/api/analytics/activity/batch",
                       json={"events": [{"event_type": "page_view"} for _ in range(20)]}
                       ).status_code == 202
    assert client.post("/api/analytics/sessions", json={"page_path": "/"}).status_code == 202
    settings = get_state(js_app).settings

    async def store_without_acknowledging() -> None:
        """A writer that commits and dies before its acknowledgements reach the stream."""
        nc = await stream.connect(settings)
        js = nc.jetstream()
        sub = await js.pull_subscribe(stream.subject(settings), durable=stream.DURABLE,
                                      stream=settings.stream_name)
        messages = await sub.fetch(100, timeout=5)
        writer = StreamWriter(db_url, settings)
        batch = stream.batch_of([row for m in messages for row in stream.decode(m.data)])
        await asyncio.to_thread(writer._store, [batch])
        # committed, never acknowledged: the stream delivers them again (after ack_wait
        # for a writer that died; at once here, where the consumer says "not done")
        await asyncio.gather(*(m.nak() for m in messages))
        await nc.close()

    asyncio.run(store_without_acknowledging())
    assert count(conn, "user_activity_events") == 20
    sessions = "SELECT session_id, page_count, event_count FROM user_sessions ORDER BY 1"
    before = conn.execute(sessions).fetchall()
    with RunningWriter(db_url, settings) as writer:
        wait_for(lambda: writer.counters["delivered"] >= 2)  # the batch, the launch ping
    assert writer.counters["redelivered"] >= 2
    assert count(conn, "user_activity_events") == 20
    assert count(conn, "user_sessions", "is_app_launch") == 1
    assert conn.execute(sessions).fetchall() == before  # no count added twice


def test_a_forgotten_users_messages_never_become_rows(
        js_app: Flask, db_url: str, conn: psycopg.Connection[Any], auth: Any) -> None:
    client = _client(js_app)
    user, other = uuid.uuid4(), uuid.uuid4()
    for who in (user, other):
        assert client.post("/api/analytics/activity/track", headers=auth.header(who),
                           json={"event_type": "page_view"}).status_code == 202
        assert client.post("/api/analytics/sessions", headers=auth.header(who),
                           json={"page_path": "/"}).status_code == 202
    forget = client.delete(f"/api/analytics/users/{user}", headers=auth.header(user))
    assert forget.status_code == 200, forget.get_json()
    with RunningWriter(db_url, get_state(js_app).settings) as writer:
        wait_for(lambda: writer.counters["batches"] >= 1
                 and count(conn, "user_activity_events") == 1)
    assert count(conn, "user_activity_events", "user_id = %s", (user,)) == 0
    assert count(conn, "user_sessions", "user_id = %s", (user,)) == 0
    assert count(conn, "user_activity_events", "user_id = %s", (other,)) == 1


def test_a_full_stream_answers_503_and_keeps_what_it_acknowledged(
        js_config: dict[str, Any], db_url: str, conn: psycopg.Connection[Any]) -> None:
    app = create_app({**js_config, "WAYMARK_STREAM_MAX_BYTES": 1024 * 1024})
    try:
        client = _client(app)
        accepted, refused = 0, None
        filler = {"blob": "x" * 4000}
        for _ in range(600):  # ~4.5 KB a message: a 1 MiB stream is full after ~230
            answer = client.post("/api/analytics/activity/batch", json={"events": [
                {"event_type": "custom_fill", "event_data": filler} for _ in range(10)]})
            if answer.status_code != 202:
                refused = answer
                break
            accepted += 10
        assert refused is not None and refused.status_code == 503, "the stream never filled"
        assert refused.headers["Retry-After"]
        assert 100 <= accepted < 300
        with RunningWriter(db_url, get_state(app).settings) as writer:
            wait_for(lambda: count(conn, "user_activity_events") >= accepted)
        stored = count(conn, "user_activity_events")
        # every acknowledged event is stored; a refused batch may be partly in the stream
        # (the client resends all of it: its ids make that a no-op)
        assert accepted <= stored <= accepted + 10
        assert writer.counters["dead_lettered"] == 0
    finally:
        get_state(app).close()


def test_no_nats_answers_503(app_config: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    app = create_app({**app_config, "WAYMARK_QUEUE_URL": f"nats://127.0.0.1:{free_port()}"})
    try:
        answer = _client(app).post("/api/analytics/activity/track",
                                   json={"event_type": "page_view"})
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
    finally:
        get_state(app).close()


def test_health_reports_the_stream_and_sums_the_processes(
        js_app: Flask, db_url: str, auth: Any) -> None:
    client = _client(js_app)
    for _ in range(3):
        assert client.post("/api/analytics/activity/track",
                           json={"event_type": "page_view"}).status_code == 202
    body = client.get("/api/analytics/health", headers=auth.header(uuid.uuid4(), "admin")
                      ).get_json()
    assert body["ingestion"]["mode"] == "jetstream"
    assert body["ingestion"]["stream"]["messages"] == 3
    assert body["writer"]["queue_depth"] == 3
    settings = get_state(js_app).settings
    with RunningWriter(db_url, settings) as writer:
        wait_for(lambda: writer.counters["written"] == 3)
        writer.heartbeat.beat(psycopg.connect(db_url, autocommit=True), force=True)
        body = client.get("/api/analytics/health",
                          headers=auth.header(uuid.uuid4(), "admin")).get_json()
    assert body["ingestion"]["stream"]["messages"] == 0
    assert body["ingestion"]["processes"] == {"publisher": 1, "writer": 1}
    assert body["writer"]["accepted"] == 3 and body["writer"]["written"] == 3
    assert isinstance(get_state(js_app).writer, StreamPublisher)
