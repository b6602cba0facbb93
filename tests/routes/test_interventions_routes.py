"""Interventions over HTTP, per role: record, list, /students, outcomes; forget, export,
anonymize. Every write runs as the caller, so the table's INSERT policy is what refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import add_event
from flask.testing import FlaskClient
from freezegun import freeze_time

from backend.services.privacy import retention

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _id(tag: str) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{tag:0>12}")


MATHS = uuid.UUID("c1000000-0000-4000-8000-000000000001")
S1, S2 = _id("a1"), _id("b1")           # S1 in maths, S2 in no class of T_MATHS
T_MATHS, T_OTHER = _id("7e01"), _id("7e02")
PARENT = _id("9a01")                    # parent of S1 only
ADMIN = _id("ad01")


@pytest.fixture
def school(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Maths 7A')", (MATHS,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) VALUES "
                 "(%s, %s, 'student'), (%s, %s, 'teacher')", (MATHS, S1, MATHS, T_MATHS))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, S1))
    for student in (S1, S2):
        add_event(conn, "login_success", NOW - timedelta(days=1), user_id=student)


def post(client: FlaskClient, auth: Any, user: uuid.UUID | None, role: str,
         body: Any) -> Any:
    with freeze_time(NOW):
        return client.post("/api/analytics/interventions", json=body,
                           headers=auth.header(user, role) if user else {})


def get(client: FlaskClient, auth: Any, path: str, user: uuid.UUID, role: str) -> Any:
    with freeze_time(NOW):
        return client.get(path, headers=auth.header(user, role))


@pytest.mark.parametrize(("user", "role", "student", "status"), [
    (T_MATHS, "teacher", S1, 201),
    (T_MATHS, "teacher", S2, 403),      # not in a class they teach
    (T_OTHER, "teacher", S1, 403),      # teaches nothing
    (PARENT, "parent", S1, 201),
    (PARENT, "parent", S2, 403),        # not their child
    (ADMIN, "admin", S2, 201),
    (S1, "student", S1, 403),           # students do not record interventions
    (None, "anon", S1, 401),
])
def test_who_may_record_an_intervention(client: FlaskClient, auth: Any, school: None,
                                        conn: psycopg.Connection[Any], user: uuid.UUID | None,
                                        role: str, student: uuid.UUID, status: int) -> None:
    answer = post(client, auth, user, role,
                  {"student_id": str(student), "action": "contacted", "note": "called home"})
    assert answer.status_code == status, answer.get_json()
    stored = conn.execute("SELECT student_id, actor_id, actor_role, action, note "
                          "FROM interventions").fetchall()
    if status == 201:
        assert answer.get_json()["actor_id"] == str(user)
        assert stored == [(student, user, role, "contacted", "called home")]
    else:
        assert set(answer.get_json()) == {"error"}
        assert stored == []


@pytest.mark.parametrize(("body", "field"), [
    ({"student_id": "nope", "action": "contacted"}, "student_id"),
    ({"student_id": str(S1), "action": "emailed"}, "action"),
    ({"student_id": str(S1)}, "action"),
    ({"student_id": str(S1), "action": "resolved", "note": "x" * 2001}, "note"),
    ({"student_id": str(S1), "action": "resolved", "note": 5}, "note"),
    ({"student_id": str(S1), "action": "resolved", "actor_id": str(ADMIN)}, "actor_id"),
    ([1, 2], "JSON object"),
])
def test_bad_bodies_are_400_naming_the_field(client: FlaskClient, auth: Any, school: None,
                                             body: Any, field: str) -> None:
    answer = post(client, auth, ADMIN, "admin", body)
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]


def test_listing_follows_who_may_see_the_student(client: FlaskClient, auth: Any,
                                                 school: None) -> None:
    assert post(client, auth, T_MATHS, "teacher",
                {"student_id": str(S1), "action": "acknowledged"}).status_code == 201
    assert post(client, auth, ADMIN, "admin",
                {"student_id": str(S2), "action": "not_useful"}).status_code == 201
    path = f"/api/analytics/interventions?student_id={S1}"
    for user, role in ((PARENT, "parent"), (T_MATHS, "teacher"), (S1, "student"),
                       (ADMIN, "admin")):
        rows = get(client, auth, path, user, role).get_json()["interventions"]
        assert [r["action"] for r in rows] == ["acknowledged"], (user, role)
    for user, role in ((T_OTHER, "teacher"), (S2, "student")):
        assert get(client, auth, path, user, role).status_code == 403
    students = get(client, auth, "/api/analytics/students", PARENT, "parent").get_json()
    assert [(s["user_id"], s["last_intervention"]["action"]) for s in students["students"]] == [
        (str(S1), "acknowledged")]


def test_outcomes_compare_actions_with_flagged_students_no_one_acted_on(
        client: FlaskClient, auth: Any, school: None, conn: psycopg.Connection[Any]) -> None:
    acted_at = NOW - timedelta(days=20)
    for student in (S1, S2):   # both flagged 20 days ago
        conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone, "
                     "risk_score) VALUES (%s, %s, 'risk_assessment', 0.9)", (student, acted_at))
    conn.execute("INSERT INTO interventions (student_id, actor_id, actor_role, action, "
                 "created_at) VALUES (%s, %s, 'admin', 'contacted', %s)",
                 (S1, ADMIN, acted_at + timedelta(hours=1)))
    add_event(conn, "login_success", acted_at + timedelta(days=3), user_id=S1)
    # work the app assigned S2 is not S2 coming back
    add_event(conn, "quest_assigned", acted_at + timedelta(days=2), user_id=S2,
              source="server", data={"quest_id": "q9"})
    conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone, "
                 "risk_score) VALUES (%s, %s, 'risk_assessment', 0.5)",
                 (S1, acted_at + timedelta(days=10)))
    body = get(client, auth, "/api/analytics/interventions/outcomes", ADMIN, "admin").get_json()
    groups = {g["action"]: g for g in body["groups"]}
    assert groups["contacted"]["students"] == 1
    assert groups["contacted"]["active_again_7d"] == 1.0
    assert groups["contacted"]["mean_risk_change_14d"] == pytest.approx(-0.4)
    assert groups["no_action"]["students"] == 1
    assert groups["no_action"]["active_again_7d"] == 0.0    # S2's login is at NOW - 1 day
    assert groups["no_action"]["active_again_14d"] == 0.0
    assert "not proof of cause" in body["caveat"]
    for user, role in ((T_MATHS, "teacher"), (PARENT, "parent"), (S1, "student")):
        assert get(client, auth, "/api/analytics/interventions/outcomes",
                   user, role).status_code == 403


def test_forget_export_and_anonymize_cover_interventions(
        client: FlaskClient, auth: Any, school: None, conn: psycopg.Connection[Any],
        db: Any) -> None:
    assert post(client, auth, PARENT, "parent", {"student_id": str(S1), "action": "contacted",
                                                 "note": "mum: jo@example.com"}).status_code == 201
    with freeze_time(NOW):
        export = client.get("/api/analytics/me/export", headers=auth.header(S1, "student"))
    tables = json.loads(export.get_data(as_text=True))["tables"]
    assert [r["action"] for r in tables["interventions"]] == ["contacted"]
    # anonymization after 90 days: no people, no note, the action stays
    retention.anonymize(db, now=NOW + timedelta(days=91), older_than_days=90, pii_keys=[])
    assert conn.execute("SELECT student_id, actor_id, note, action FROM interventions"
                        ).fetchall() == [(None, None, None, "contacted")]
    assert post(client, auth, ADMIN, "admin",
                {"student_id": str(S1), "action": "resolved"}).status_code == 201
    with freeze_time(NOW):
        receipt = client.delete(f"/api/analytics/users/{S1}",
                                headers=auth.header(ADMIN, "admin")).get_json()
    assert receipt["rows_removed"]["interventions"] == 1
    assert conn.execute("SELECT count(*) FROM interventions WHERE student_id IS NOT NULL"
                        ).fetchone() == (0,)
