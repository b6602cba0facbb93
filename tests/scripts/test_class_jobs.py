"""`waymark classes`: create, list, add, remove, rename, delete — on a real database."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
from click.testing import CliRunner

from backend.scripts.cli import main

TEACHER = uuid.UUID("00000000-0000-4000-8000-00000000ee01")
STUDENTS = [uuid.UUID(f"00000000-0000-4000-8000-0000000000{n:02d}") for n in range(1, 4)]


def invoke(db_url: str, *args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, ["classes", *args], env={"DATABASE_URL": db_url})
    assert (result.exit_code == 0) is ok, result.output
    return result


def members(conn: psycopg.Connection[Any], class_id: str) -> set[tuple[uuid.UUID, str]]:
    return {(r[0], r[1]) for r in conn.execute(
        "SELECT user_id, member_role FROM class_memberships WHERE class_id = %s", (class_id,))}


def test_a_class_from_creation_to_deletion(db_url: str, conn: psycopg.Connection[Any]) -> None:
    created = invoke(db_url, "create", "Year 7 Maths").output
    match = re.search(r"waymark classes create: class_id=([0-9a-f-]{36}) name=\"Year 7 Maths\"",
                      created)
    assert match, created
    class_id = match.group(1)
    added = invoke(db_url, "add", class_id, *map(str, STUDENTS)).output
    assert "added=3 unchanged=0" in added
    assert "added=0 unchanged=1" in invoke(db_url, "add", class_id, str(STUDENTS[0])).output
    invoke(db_url, "add", class_id, str(TEACHER), "--role", "teacher")
    assert members(conn, class_id) == {(s, "student") for s in STUDENTS} | {(TEACHER, "teacher")}
    listing = invoke(db_url, "list").output
    assert f"{class_id}    1 teachers     3 students  Year 7 Maths" in listing
    shown = invoke(db_url, "members", class_id).output
    assert shown.splitlines()[0] == f"{TEACHER}  teacher"
    assert "removed=1 not_members=1" in invoke(
        db_url, "remove", class_id, str(STUDENTS[0]), str(uuid.uuid4())).output
    assert (STUDENTS[0], "student") not in members(conn, class_id)
    invoke(db_url, "rename", class_id, "Year 7 Maths (set 2)")
    assert conn.execute("SELECT name FROM classes WHERE class_id = %s",
                        (class_id,)).fetchone() == ("Year 7 Maths (set 2)",)
    invoke(db_url, "delete", class_id)
    assert members(conn, class_id) == set()
    assert conn.execute("SELECT count(*) FROM classes").fetchone() == (0,)


def test_mistakes_are_clear_errors(db_url: str) -> None:
    missing = invoke(db_url, "add", str(uuid.uuid4()), str(TEACHER), ok=False).output
    assert "no class" in missing and "waymark classes list" in missing
    assert "Traceback" not in missing
    assert "1 to 200 characters" in invoke(db_url, "create", "   ", ok=False).output
    assert "'admin' is not one of" in invoke(db_url, "add", str(uuid.uuid4()), str(TEACHER),
                                             "--role", "admin", ok=False).output
    assert "is not a valid UUID" in invoke(db_url, "add", "nope", str(TEACHER), ok=False).output


def test_a_forgotten_user_is_never_re_added(db_url: str, conn: psycopg.Connection[Any]) -> None:
    found = re.search(r"class_id=([0-9a-f-]{36})", invoke(db_url, "create", "Art").output)
    assert found
    class_id = found.group(1)
    invoke(db_url, "add", class_id, str(STUDENTS[1]))
    result = CliRunner().invoke(main, ["forget", str(STUDENTS[1])], env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert members(conn, class_id) == set()  # forget removed the membership
    assert "added=0 unchanged=1" in invoke(db_url, "add", class_id, str(STUDENTS[1])).output
    assert members(conn, class_id) == set()
