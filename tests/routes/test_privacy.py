"""The privacy endpoints: export my data, forget a user (self or admin), and the writer queue."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from ingestion_support import BROWSER, count

from backend.state import get_state

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
B = uuid.UUID("b0000000-0000-4000-8000-00000000000b")
PARENT = uuid.UUID("c0000000-0000-4000-8000-00000000000c")
ADMIN = uuid.UUID("d0000000-0000-4000-8000-00000000000d")


def seed(conn: psycopg.Connection[Any], events_of_a: int = 2) -> None:
    with conn.cursor().copy("COPY user_activity_events (occurred_at, user_id, event_type) "
                            "FROM STDIN") as copy:
        for _ in range(events_of_a):
            copy.write_row(("2026-05-01T10:00:00Z", A, "quest_started"))
        copy.write_row(("2026-05-01T10:00:00Z", B, "quest_started"))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s), (%s, %s)",
                 (PARENT, A, PARENT, B))


def count_of(conn: psycopg.Connection[Any], user: uuid.UUID) -> int:
    row = conn.execute("SELECT count(*) FROM user_activity_events WHERE user_id = %s",
                       (user,)).fetchone()
    return int(row[0]) if row else -1


def test_export_streams_the_callers_own_data(client: FlaskClient, auth: Any,
                                             conn: psycopg.Connection[Any]) -> None:
    seed(conn, events_of_a=2500)
    response = client.get("/api/analytics/me/export", headers=auth.header(A))
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    chunks = list(response.response)
    assert len(chunks) > 1
    document = json.loads(b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks))
    assert document["user_id"] == str(A)
    assert len(document["tables"]["user_activity_events"]) == 2500
    assert str(B) not in json.dumps(document["tables"]["user_activity_events"])


def test_a_parent_export_holds_only_the_parents_own_rows(
        client: FlaskClient, auth: Any, conn: psycopg.Connection[Any]) -> None:
    seed(conn)
    response = client.get("/api/analytics/me/export", headers=auth.header(PARENT, "parent"))
    document = response.get_json()
    assert document["tables"]["user_activity_events"] == []
    assert len(document["tables"]["guardian_links"]) == 2


def test_export_needs_a_token(client: FlaskClient) -> None:
    response = client.get("/api/analytics/me/export")
    assert response.status_code == 401
    assert "error" in response.get_json()


def test_a_user_can_forget_themselves(client: FlaskClient, auth: Any,
                                      conn: psycopg.Connection[Any]) -> None:
    seed(conn)
    response = client.delete(f"/api/analytics/users/{A}", headers=auth.header(A))
    assert response.status_code == 200
    receipt = response.get_json()
    assert receipt["user_id"] == str(A)
    assert receipt["rows_removed"]["user_activity_events"] == 2
    assert receipt["rows_removed"]["guardian_links"] == 1
    assert count_of(conn, A) == 0 and count_of(conn, B) == 1

    again = client.delete(f"/api/analytics/users/{A}", headers=auth.header(A))
    assert again.status_code == 200 and again.get_json()["total_rows_removed"] == 0


def test_nothing_recreates_a_forgotten_user(client: FlaskClient, auth: Any,
                                            conn: psycopg.Connection[Any]) -> None:
    """After a forget, the same token on every ingestion endpoint and on a host request
    makes no row: each row the writer makes passes the tombstone (the app-launch ping
    used to recreate the user's session)."""
    seed(conn)
    headers = {**auth.header(A), **BROWSER}
    assert client.delete(f"/api/analytics/users/{A}", headers=headers).status_code == 200
    api = "/api/analytics"
    for path, body in ((f"{api}/sessions", {"page_path": "/home"}),
                       (f"{api}/activity/track", {"event_type": "page_view"}),
                       (f"{api}/activity/batch", {"events": [{"event_type": "logout"}]}),
                       (f"{api}/errors", {"message": "boom"})):
        assert client.post(path, json=body, headers=headers).status_code in (202, 204), path
    client.get("/dashboard", headers=headers)  # a host request the middleware records
    assert get_state(client.application).writer.flush(10) == 0
    for table in ("user_activity_events", "user_sessions", "error_events"):
        assert count(conn, table, "user_id = %s", (A,)) == 0, table
    assert count_of(conn, B) == 1


def test_only_self_or_admin_may_forget(client: FlaskClient, auth: Any,
                                       conn: psycopg.Connection[Any]) -> None:
    seed(conn)
    for header in (auth.header(B), auth.header(PARENT, "parent")):
        response = client.delete(f"/api/analytics/users/{A}", headers=header)
        assert response.status_code == 403
        assert set(response.get_json()) == {"error"}
    assert count_of(conn, A) == 2

    response = client.delete(f"/api/analytics/users/{A}", headers=auth.header(ADMIN, "admin"))
    assert response.status_code == 200
    assert count_of(conn, A) == 0


def test_forget_rejects_a_malformed_id_and_a_missing_token(client: FlaskClient,
                                                           auth: Any) -> None:
    assert client.delete("/api/analytics/users/not-a-uuid",
                         headers=auth.header(ADMIN, "admin")).status_code == 400
    assert client.delete(f"/api/analytics/users/{A}").status_code == 401
    # only the canonical form, as every other route (uuid.UUID took urn:uuid:, braces, hex)
    for other_form in (f"urn:uuid:{A}", f"{{{A}}}", A.hex):
        assert client.delete(f"/api/analytics/users/{other_form}",
                             headers=auth.header(ADMIN, "admin")).status_code == 400


def test_a_queued_event_does_not_resurrect_a_forgotten_user(
        app_config: dict[str, Any], auth: Any, conn: psycopg.Connection[Any]) -> None:
    """Events of the user sit in the real writer (queue and in-memory batch) during forget."""
    from backend import create_app
    from backend.tracking import track

    app_config["WAYMARK_FLUSH_INTERVAL"] = 3.0
    app: Flask = create_app(app_config)
    try:
        writer = get_state(app).writer
        for n in range(5):
            assert track("quest_started", user_id=A, app=app, quest_id=f"q{n}")
        assert track("quest_started", user_id=B, app=app, quest_id="qb")
        response = app.test_client().delete(f"/api/analytics/users/{A}",
                                            headers=auth.header(A))
        assert response.status_code == 200
        assert writer.flush(10) == 0
    finally:
        get_state(app).close()
    assert count_of(conn, A) == 0
    assert count_of(conn, B) == 1
