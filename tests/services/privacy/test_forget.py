"""Forget: every trace gone from every table, a receipt, idempotence, and the writer race."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import hashing
from backend.services.privacy.forget import forget_user
from backend.services.privacy.salts import get_or_create_salt, period_start

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
B = uuid.UUID("b0000000-0000-4000-8000-00000000000b")
PARENT = uuid.UUID("c0000000-0000-4000-8000-00000000000c")
CLASS = uuid.UUID("d0000000-0000-4000-8000-00000000000d")


def now() -> datetime:
    return datetime.now(UTC)


def current_salt(db: Database) -> bytes:
    with db.connection() as conn:
        salt, _ = get_or_create_salt(conn, period_start(now(), "day"))
    return salt


def add_event(conn: psycopg.Connection[Any], user: uuid.UUID | None, *,
              visitor: bytes | None = None, data: dict[str, Any] | None = None,
              page_path: str = "/quests", event_type: str = "page_view") -> None:
    conn.execute(
        """INSERT INTO user_activity_events (occurred_at, user_id, visitor_hash, session_id,
               event_type, page_path, event_data)
           VALUES (now(), %s, %s, %s, %s, %s, %s)""",
        (user, visitor, uuid.uuid4(), event_type, page_path, Jsonb(data or {})))


def seed(db: Database, conn: psycopg.Connection[Any]) -> dict[str, Any]:
    salt = current_salt(db)
    visitor_a = hashing.visitor_hash_for_user(salt, A)
    ref_a = hashing.keyed_hash(salt, "ref", str(A)).hex()
    for _ in range(3):
        add_event(conn, A, visitor=visitor_a, data={"quest_id": "q1"})
    add_event(conn, None, visitor=visitor_a)                      # signed-out, same period
    add_event(conn, None, event_type="conversion", data={"event": "first_game_open",
                                                           "user_ref": ref_a})
    add_event(conn, B, visitor=b"b" * 16, data={"profile_id": str(A).upper()},
              page_path=f"/profiles/{A}", event_type="profile_viewed")
    add_event(conn, B, visitor=b"b" * 16, data={"quest_id": "q2"})
    conn.execute("""INSERT INTO user_sessions (user_id, visitor_hash, started_at, last_seen_at)
                    VALUES (%s, %s, now(), now()), (NULL, %s, now(), now()),
                           (%s, %s, now(), now())""",
                 (A, visitor_a, visitor_a, B, b"b" * 16))
    group = conn.execute(
        """INSERT INTO error_groups (fingerprint, error_type, first_seen, last_seen,
               occurrences, users_affected)
           VALUES ('fp', 'api_error', now(), now(), 3, 2) RETURNING group_id""").fetchone()
    assert group is not None
    for user in (A, A, B):
        conn.execute("""INSERT INTO error_events (occurred_at, user_id, error_type, message,
                            fingerprint, group_id)
                        VALUES (now(), %s, 'api_error', 'boom', 'fp', %s)""", (user, group[0]))
    conn.execute("""INSERT INTO learning_journey_events (user_id, occurred_at, milestone,
                        dedupe_key, details)
                    VALUES (%s, now(), 'quest_completed', %s, '{}'),
                           (%s, now(), 'badge_earned', %s, %s)""",
                 (A, f"score:{A}:1", B, f"score:{B}:1", Jsonb({"peer": str(A)})))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s), (%s, %s)",
                 (PARENT, A, PARENT, B))
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Year 7')", (CLASS,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                 "VALUES (%s, %s, 'student'), (%s, %s, 'student'), (%s, %s, 'teacher')",
                 (CLASS, A, CLASS, B, CLASS, PARENT))
    conn.execute("""INSERT INTO waymark.dead_letters (kind, error, payload)
                    VALUES ('event', 'bad row', %s), ('event', 'bad row', %s)""",
                 (Jsonb({"user_id": str(A)}), Jsonb({"user_id": str(B)})))
    return {"group_id": group[0], "visitor_a": visitor_a, "ref_a": ref_a}


def traces_left(conn: psycopg.Connection[Any], user: uuid.UUID, hashes: list[bytes],
                hexes: list[str]) -> list[str]:
    """Scan every uuid, text, jsonb and bytea column of every table in public (and the
    private schema's dead letters) for the user's id and derived hashes."""
    columns = conn.execute(
        """SELECT table_schema, table_name, column_name, data_type
           FROM information_schema.columns JOIN information_schema.tables
                USING (table_schema, table_name)
           WHERE table_type = 'BASE TABLE'
             AND (table_schema = 'public'
                  OR (table_schema = 'waymark' AND table_name = 'dead_letters'))
             AND data_type IN ('uuid', 'text', 'character varying', 'jsonb', 'json',
                               'bytea')""").fetchall()
    assert len(columns) > 40  # the scan really covers the schema
    needles = [str(user), *hexes, *(h.hex() for h in hashes)]
    found = []
    for schema, table, column, data_type in columns:
        col = sql.Identifier(column)
        if data_type == "bytea":
            where = sql.SQL("{} = ANY(%(hashes)s) OR encode({}, 'hex') ~* %(pattern)s").format(
                col, col)
        else:
            where = sql.SQL("{}::text ~* %(pattern)s").format(col)
        count = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            sql.Identifier(schema, table), where),
            {"hashes": hashes, "pattern": "|".join(needles)}).fetchone()
        if count and count[0]:
            found.append(f"{schema}.{table}.{column}: {count[0]}")
    return found


def test_forget_leaves_no_trace_in_any_column_of_any_table(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    seeded = seed(db, conn)
    hashes, hexes = [seeded["visitor_a"]], [seeded["ref_a"]]
    assert len(traces_left(conn, A, hashes, hexes)) >= 8  # the scan finds what is there

    receipt = forget_user(db, A, now=now())

    assert traces_left(conn, A, hashes, hexes) == []
    removed = {k: v for k, v in receipt.rows_removed.items() if v}
    assert removed == {"user_activity_events": 5, "user_sessions": 2, "error_events": 2,
                       "learning_journey_events": 1, "guardian_links": 1,
                       "class_memberships": 1, "waymark.dead_letters": 1}
    assert receipt.mentions_redacted == {"user_activity_events": 1,
                                         "learning_journey_events": 1}


def test_other_people_keep_their_rows_and_error_groups_lose_one_person(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    seeded = seed(db, conn)
    forget_user(db, A, now=now())

    assert conn.execute("SELECT count(*) FROM user_activity_events WHERE user_id = %s",
                        (B,)).fetchone() == (2,)
    viewed = conn.execute("SELECT page_path, event_data FROM user_activity_events "
                          "WHERE event_type = 'profile_viewed'").fetchone()
    assert viewed == ("/profiles/[forgotten]", {"profile_id": "[forgotten]"})
    assert conn.execute("SELECT parent_id, student_id FROM guardian_links").fetchall() == [
        (PARENT, B)]
    assert conn.execute("SELECT occurrences, users_affected FROM error_groups "
                        "WHERE group_id = %s", (seeded["group_id"],)).fetchone() == (1, 1)
    assert conn.execute("SELECT count(*) FROM error_events").fetchone() == (1,)


def test_forget_is_idempotent_and_audited_without_the_id(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    seed(db, conn)
    first = forget_user(db, A, now=now())
    state = conn.execute(
        "SELECT (SELECT count(*) FROM user_activity_events), (SELECT count(*) FROM "
        "user_sessions), (SELECT sum(occurrences) FROM error_groups)").fetchone()

    second = forget_user(db, A, now=now())

    assert first.total_removed == 13 and not first.already_forgotten
    assert second.total_removed == 0 and second.mentions_redacted == {}
    # answered from the finished forget's tombstone: the writers were never blocked
    assert second.already_forgotten and second.lock_held_seconds == 0
    assert conn.execute(
        "SELECT (SELECT count(*) FROM user_activity_events), (SELECT count(*) FROM "
        "user_sessions), (SELECT sum(occurrences) FROM error_groups)").fetchone() == state
    audits = conn.execute("SELECT details FROM privacy_audit WHERE action = 'forget' "
                          "ORDER BY id").fetchall()
    assert [a[0]["total_rows_removed"] for a in audits] == [13, 0]
    assert str(A) not in str(audits) and str(A).replace("-", "") not in str(audits)


def test_a_forget_that_died_half_way_is_run_in_full_by_the_next(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    """Only a finished forget makes a repeat a no-op: a tombstone without the mark (the
    process died between the tombstone and the deletion) does not."""
    seed(db, conn)
    conn.execute("INSERT INTO waymark.forgotten_users (user_id_hash, expires_at) "
                 "VALUES (sha256(convert_to(lower(%s::text), 'UTF8')), now() + interval "
                 "'15 minutes')", (A,))
    receipt = forget_user(db, A, now=now())
    assert not receipt.already_forgotten and receipt.total_removed == 13


def test_the_writer_cannot_resurrect_a_forgotten_user(
        db: Database, conn: psycopg.Connection[Any], db_url: str) -> None:
    """A writer transaction in flight delays forget; one that starts later is filtered."""
    insert = ("INSERT INTO user_activity_events (occurred_at, user_id, event_type) "
              "SELECT now(), s.user_id, 'page_view' FROM (VALUES (%s::uuid)) AS s(user_id) "
              "WHERE NOT waymark.is_forgotten(s.user_id)")
    writer = psycopg.connect(db_url)
    try:
        writer.execute("SELECT waymark.lock_forget_shared()")
        assert writer.execute(insert, (A,)).rowcount == 1     # before the tombstone
        done = threading.Event()
        receipts: list[Any] = []

        def run() -> None:
            receipts.append(forget_user(db, A, now=now()))
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # forget waits for the writer's shared lock
        waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND NOT granted").fetchone()
        assert waiting == (1,)
        writer.commit()
        thread.join(10)
        assert done.is_set()
        assert receipts[0].rows_removed["user_activity_events"] == 1

        writer.execute("SELECT waymark.lock_forget_shared()")
        assert writer.execute(insert, (A,)).rowcount == 0     # the tombstone filters it
        assert writer.execute(insert, (B,)).rowcount == 1     # others still get through
        writer.commit()
    finally:
        writer.close()
    assert conn.execute("SELECT count(*) FROM user_activity_events WHERE user_id = %s",
                        (A,)).fetchone() == (0,)


def test_drop_queued_is_called_after_the_tombstone(db: Database,
                                                   conn: psycopg.Connection[Any]) -> None:
    seen: list[tuple[uuid.UUID, int]] = []

    def drop(user: uuid.UUID) -> int:
        tomb = conn.execute("SELECT count(*) FROM waymark.forgotten_users").fetchone()
        seen.append((user, tomb[0] if tomb else -1))
        return 4

    receipt = forget_user(db, A, now=now(), drop_queued=drop)
    assert seen == [(A, 1)]
    assert receipt.queued_events_dropped == 4
