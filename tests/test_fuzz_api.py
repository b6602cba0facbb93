"""Fuzz every operation of the OpenAPI description against the real app and database.

schemathesis generates requests from ``/api/analytics/openapi.json`` — valid ones and ones
that break the description (negative mode) — and sends each with every role's real token
(admin, teacher, parent, student), an expired one, a malformed one and none, through the
WSGI app on a migrated database seeded with a class, its teacher, students with events
and a linked parent. Every answer must be no 5xx, a documented status with the documented
content type, and match its response schema. Bounded and repeatable: ``MAX_EXAMPLES`` per
operation, derandomized (the same requests every run), well under the 3 minutes allowed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import schemathesis
from analytics_support import add_event
from conftest import TEST_JWT_SECRET, AuthTokens, _scratch_database
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend import create_app
from backend.routes.openapi_doc import document

MAX_EXAMPLES = 60  # per operation, shared by the positive and negative modes
# schemathesis draws from the `random` module inside its strategies; Hypothesis seeds that
# module per example when derandomized, so the run stays repeatable.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]

CLASS_ID = uuid.UUID("00000000-0000-4000-8000-00000000c1a5")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
TEACHER = uuid.UUID("00000000-0000-4000-8000-00000000007e")
PARENT = uuid.UUID("00000000-0000-4000-8000-0000000000fa")
STUDENTS = [uuid.UUID(f"00000000-0000-4000-8000-00000000051{i}") for i in range(6)]
CALLERS: dict[str, uuid.UUID | None] = {"admin": ADMIN, "teacher": TEACHER, "parent": PARENT,
                                        "student": STUDENTS[0], "anonymous": None}


def fuzz_document() -> dict[str, Any]:
    """The served description, with the seeded ids as examples so that some requests are
    about people and classes that exist (random uuids mostly meet a 403 or 404)."""
    doc = document()
    parameters = doc["components"]["parameters"]
    people = {"student": STUDENTS[1], "parent": PARENT, "teacher": TEACHER}
    parameters["UserId"]["examples"] = {name: {"value": str(uid)} for name, uid in people.items()}
    for name in ("ClassId", "ClassIdQuery"):
        parameters[name]["examples"] = {"class": {"value": str(CLASS_ID)}}
    parameters["StudentIdRequired"]["examples"] = {"student": {"value": str(STUDENTS[1])}}
    return doc


SCHEMA = schemathesis.openapi.from_dict(fuzz_document())
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()
              if isinstance(result, Ok)}


def seed(url: str) -> None:
    """A class with its teacher and six students active on some days; a linked parent."""
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Fuzz 1A')", (CLASS_ID,))
        rows = [(CLASS_ID, s, "student") for s in STUDENTS] + [(CLASS_ID, TEACHER, "teacher")]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO class_memberships (class_id, user_id, member_role) "
                            "VALUES (%s, %s, %s)", rows)
        conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                     (PARENT, STUDENTS[0]))
        for i, student in enumerate(STUDENTS):
            for day in range(1 + i % 4):
                add_event(conn, "login_success", now - timedelta(days=day, hours=1),
                          user_id=student)
                add_event(conn, "page_view", now - timedelta(days=day, hours=1),
                          user_id=student, page_path="/quests", utm_source="fuzz")


@pytest.fixture(scope="module")
def fuzz_app(pg_server_url: str, template_db: str) -> Iterator[Flask]:
    """One app on one seeded database for the whole module (state carries across cases,
    as on a real server)."""
    scratch = _scratch_database(pg_server_url, template=template_db)
    url = next(scratch)
    seed(url)
    app = create_app({"TESTING": True, "WAYMARK_DATABASE_URL": url,
                      "WAYMARK_JWT_SECRET": TEST_JWT_SECRET, "WAYMARK_POOL_MAX_SIZE": 4})
    yield app
    app.extensions["waymark"].close()
    next(scratch, None)


@pytest.fixture(scope="module")
def role_headers() -> dict[str, dict[str, str]]:
    """Each role's real token (the app's secret); an expired token, a malformed one, none."""
    tokens = AuthTokens()
    headers = {role: {} if uid is None else tokens.header(uid, role)
               for role, uid in CALLERS.items()}
    headers["expired"] = tokens.header(ADMIN, "admin", exp=int(time.time()) - 60)
    headers["not a JWT"] = {"Authorization": "Bearer not.a.jwt"}
    return headers


def cases_of(label: str) -> st.SearchStrategy[Any]:
    """Valid and invalid requests for one operation."""
    operation = OPERATIONS[label]
    return st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                     operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


def test_every_operation_is_fuzzed() -> None:
    described = {f"{method.upper()} {path}" for path, item in document()["paths"].items()
                 for method in item}
    assert set(OPERATIONS) == described


def deletes_last(label: str) -> tuple[bool, int, str]:
    """Deleting the seeded class or a seeded student first would leave the other
    operations only 404s and strangers to fuzz (a membership goes before its class)."""
    return label.startswith("DELETE "), -label.count("/"), label


@pytest.mark.parametrize("label", sorted(OPERATIONS, key=deletes_last))
def test_no_5xx_and_answers_match_the_description(
        label: str, fuzz_app: Flask, role_headers: dict[str, dict[str, str]]) -> None:
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(case=cases_of(label))
    def run(case: Any) -> None:
        for headers in role_headers.values():
            case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS)

    run()
