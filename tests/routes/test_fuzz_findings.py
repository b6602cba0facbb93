"""Inputs the API fuzzing (tests/test_fuzz_api.py) found answered with a 500: each is now a
clear 400 naming the field, and each test here failed before its fix."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
TEACHER = uuid.UUID("00000000-0000-4000-8000-00000000007e")
STUDENT = uuid.UUID("00000000-0000-4000-8000-000000000051")
CLASS_ID = uuid.UUID("00000000-0000-4000-8000-00000000c1a5")
#: JSON PostgreSQL text cannot hold: a NUL, and a lone surrogate (not encodable as UTF-8).
UNSTORABLE = ['"Maths\\u0000"', '"Maths \\ud800"']


@pytest.fixture
def a_class(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Maths')", (CLASS_ID,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) VALUES "
                 "(%s, %s, 'student'), (%s, %s, 'teacher')", (CLASS_ID, STUDENT, CLASS_ID, TEACHER))


def send(client: FlaskClient, auth: Any, method: str, path: str, raw_json: str,
         user: uuid.UUID = ADMIN, role: str = "admin") -> Any:
    return client.open(path, method=method, data=raw_json.encode(),
                       content_type="application/json", headers=auth.header(user, role))


@pytest.mark.parametrize("name", UNSTORABLE)
def test_a_class_name_postgresql_cannot_store_is_a_400(client: FlaskClient, auth: Any,
                                                        a_class: None, name: str) -> None:
    created = send(client, auth, "POST", "/api/analytics/classes", f'{{"name": {name}}}')
    renamed = send(client, auth, "PATCH", f"/api/analytics/classes/{CLASS_ID}",
                   f'{{"name": {name}}}')
    for answer in (created, renamed):
        assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
        assert "name" in answer.json["error"]


@pytest.mark.parametrize("note", UNSTORABLE)
def test_an_intervention_note_postgresql_cannot_store_is_a_400(
        client: FlaskClient, auth: Any, a_class: None, note: str) -> None:
    body = f'{{"student_id": "{STUDENT}", "action": "contacted", "note": {note}}}'
    answer = send(client, auth, "POST", "/api/analytics/interventions", body, TEACHER, "teacher")
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.json["error"].startswith("note:")


@pytest.mark.parametrize("days", ["²", "1²", "٣٠"])
def test_a_whole_number_parameter_in_other_digits_is_a_400(client: FlaskClient, auth: Any,
                                                            days: str) -> None:
    """``str.isdigit`` is true for superscripts, which ``int`` refuses (a ValueError, 500):
    only ASCII digits are a whole number here."""
    answer = client.get("/api/analytics/page-views", query_string={"days": days},
                        headers=auth.header(ADMIN, "admin"))
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.json["error"].startswith("days must be a whole number")
