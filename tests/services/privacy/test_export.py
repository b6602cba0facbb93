"""Export: exactly the user's rows from every table, streamed in chunks, audited."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import export, hashing
from backend.services.privacy.forget import forget_user
from backend.services.privacy.salts import get_or_create_salt, period_start

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
B = uuid.UUID("b0000000-0000-4000-8000-00000000000b")
PARENT = uuid.UUID("c0000000-0000-4000-8000-00000000000c")
CLASS = uuid.UUID("d0000000-0000-4000-8000-00000000000d")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def seed(db: Database, conn: psycopg.Connection[Any], events_of_a: int = 3) -> bytes:
    with db.connection() as c:
        salt, _ = get_or_create_salt(c, period_start(datetime.now(UTC), "day"))
    visitor_a = hashing.visitor_hash_for_user(salt, A)
    with conn.cursor().copy("COPY user_activity_events (occurred_at, user_id, visitor_hash, "
                            "event_type, event_data) FROM STDIN") as copy:
        for i in range(events_of_a):
            copy.write_row((NOW, A, visitor_a, "quest_started", Jsonb({"quest_id": f"q{i}"})))
        copy.write_row((NOW, B, b"b" * 16, "quest_started", Jsonb({"quest_id": "qb"})))
        copy.write_row((NOW, None, visitor_a, "page_view", Jsonb({})))
    conn.execute("INSERT INTO user_sessions (user_id, started_at, last_seen_at) "
                 "VALUES (%s, now(), now()), (%s, now(), now())", (A, B))
    conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone) "
                 "VALUES (%s, now(), 'badge_earned')", (A,))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s), (%s, %s)",
                 (PARENT, A, PARENT, B))
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Year 7')", (CLASS,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                 "VALUES (%s, %s, 'student'), (%s, %s, 'student')", (CLASS, A, CLASS, B))
    return visitor_a


def test_export_holds_every_row_about_the_user_and_nobody_else(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    visitor_a = seed(db, conn)

    document = json.loads("".join(export.export_user(db, A, now=NOW)))

    assert document["user_id"] == str(A)
    assert document["exported_at"] == NOW.isoformat()
    tables = document["tables"]
    events = tables["user_activity_events"]
    assert len(events) == 4  # three signed-in events and one with their visitor hash
    assert {e["user_id"] for e in events} == {str(A), None}
    assert all(e["visitor_hash"] == "\\x" + visitor_a.hex() for e in events)
    assert [s["user_id"] for s in tables["user_sessions"]] == [str(A)]
    assert [j["milestone"] for j in tables["learning_journey_events"]] == ["badge_earned"]
    assert tables["guardian_links"] == [
        {"parent_id": str(PARENT), "student_id": str(A),
         "created_at": tables["guardian_links"][0]["created_at"]}]
    assert [(m["class_id"], m["user_id"], m["member_role"])
            for m in tables["class_memberships"]] == [(str(CLASS), str(A), "student")]
    assert str(B) not in json.dumps(document)
    assert document["counts"]["user_activity_events"] == 4


def test_a_long_history_is_streamed_in_several_chunks(
        db: Database, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    seed(db, conn, events_of_a=3000)
    monkeypatch.setattr(export, "CHUNK_CHARS", 16 * 1024)

    chunks = list(export.export_user(db, A, now=NOW))

    assert len(chunks) > 5
    assert max(len(c) for c in chunks) < 17 * 1024
    assert len(json.loads("".join(chunks))["tables"]["user_activity_events"]) == 3001


def test_export_is_audited_with_counts_only(db: Database,
                                            conn: psycopg.Connection[Any]) -> None:
    seed(db, conn)
    "".join(export.export_user(db, A, now=NOW))
    row = conn.execute("SELECT details FROM privacy_audit WHERE action = 'export'").fetchone()
    assert row is not None
    assert row[0]["rows"]["user_activity_events"] == 4 and row[0]["total"] == 8
    assert str(A) not in json.dumps(row[0])


def test_export_of_an_unknown_user_is_an_empty_document(db: Database) -> None:
    document = json.loads("".join(export.export_user(db, uuid.uuid4(), now=NOW)))
    assert document["tables"]["user_activity_events"] == []
    assert sum(document["counts"].values()) == 0


def test_export_counts_equal_the_forget_receipt_table_by_table(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    """One catalogue of "what names this person": every row forget deletes is in the export
    first — including rows the person could not read through RLS (an anonymous visit under
    their visitor hash, an admin-only rollup), a conversion linked by their reference hash,
    and a dead letter that mentions them."""
    visitor_a = seed(db, conn)
    with db.connection() as c:
        salt, _ = get_or_create_salt(c, period_start(datetime.now(UTC), "day"))
    ref = hashing.reference_hash(salt, str(A)).hex()
    conn.execute("INSERT INTO user_activity_events (occurred_at, event_type, event_data) "
                 "VALUES (%s, 'conversion', %s)", (NOW, Jsonb({"ref": ref, "goal": "signup"})))
    conn.execute("INSERT INTO page_view_prefix_visitors (day, page_path, visitor_hash) "
                 "VALUES (%s, '/quests', %s)", (NOW.date(), visitor_a))
    conn.execute("INSERT INTO waymark.dead_letters (kind, error, payload) "
                 "VALUES ('event', 'refused', %s)", (Jsonb({"user_id": str(A)}),))

    document = json.loads("".join(export.export_user(db, A, now=NOW)))
    receipt = forget_user(db, A, now=NOW)

    exported = {table: n for table, n in document["counts"].items() if n}
    assert exported == {table: n for table, n in receipt.rows_removed.items() if n}
    assert exported["user_activity_events"] == 5  # 3 signed in, 1 anonymous, 1 conversion
    assert exported["page_view_prefix_visitors"] == 1
    assert exported["waymark.dead_letters"] == 1
