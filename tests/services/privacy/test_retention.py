"""Anonymize at N days and purge at M days: boundaries, scrubbing, idempotence, batching."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import retention

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PII_KEYS = ("email", "name", "phone")
USER = uuid.UUID("0b7e6f43-2c1a-4d8e-9f00-3a5b6c7d8e9f")
EVENT_DATA = {
    "quest_id": "q-algebra-1",
    "quest_title": "Fractions",
    "email": "alice@example.com",
    "note": "call me at +44 20 7946 0958 or alice@example.com",
    "nested": {"Phone": "555 0100", "list": ["bob@example.org", 5, {"name": "Bob"}]},
    "xp": 1234567,
    "due": "2026-05-01",
    "ref": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
}
SCRUBBED = {
    "quest_id": "q-algebra-1",
    "quest_title": "Fractions",
    "note": "call me at [phone] or [email]",
    "nested": {"list": ["[email]", 5, {}]},
    "xp": 1234567,
    "due": "2026-05-01",
    "ref": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
}


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def add_event(conn: psycopg.Connection[Any], days: float, *, event_type: str = "quest_completed",
              data: dict[str, Any] | None = None) -> uuid.UUID:
    row = conn.execute(
        """INSERT INTO user_activity_events (occurred_at, received_at, user_id, visitor_hash,
               network_hash, session_id, event_type, event_category, page_path, page_title,
               referrer, duration_ms, utm_campaign, event_data)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'quest', '/quests/42', 'Quest for ann@x.org',
                   'https://mail.example/?to=ann@x.org', 1500, 'invite-ann@x.org', %s)
           RETURNING event_id""",
        (ago(days), ago(days), USER, b"v" * 16, b"n" * 16, uuid.uuid4(), event_type,
         Jsonb(EVENT_DATA if data is None else data))).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_session(conn: psycopg.Connection[Any], days: float) -> None:
    conn.execute(
        """INSERT INTO user_sessions (user_id, visitor_hash, started_at, last_seen_at,
               entry_page, referrer)
           VALUES (%s, %s, %s, %s, '/start', 'https://x.test/?e=ann@x.org')""",
        (USER, b"v" * 16, ago(days) - timedelta(minutes=10), ago(days)))


def add_error(conn: psycopg.Connection[Any], days: float, group_id: int | None = None) -> None:
    conn.execute(
        """INSERT INTO error_events (occurred_at, received_at, user_id, visitor_hash, session_id,
               error_type, message, stack, fingerprint, group_id, event_data)
           VALUES (%s, %s, %s, %s, %s, 'api_error', 'no account for ann@x.org',
                   'at send (+1 555 123 4567)', 'fp1', %s, %s)""",
        (ago(days), ago(days), USER, b"v" * 16, uuid.uuid4(), group_id,
         Jsonb({"email": "ann@x.org", "endpoint": "/api/x"})))


def add_journey(conn: psycopg.Connection[Any], days: float) -> None:
    conn.execute(
        """INSERT INTO learning_journey_events (user_id, occurred_at, milestone, details,
               dedupe_key)
           VALUES (%s, %s, 'quest_completed', %s, %s)""",
        (USER, ago(days), Jsonb({"quest_id": "q1", "name": "Ann"}),
         f"score:{USER}:{days}"))


def add_group(conn: psycopg.Connection[Any], days: float, fingerprint: str) -> int:
    row = conn.execute(
        """INSERT INTO error_groups (fingerprint, error_type, message, first_seen, last_seen,
               occurrences, users_affected)
           VALUES (%s, 'api_error', 'no account for ann@x.org', %s, %s, 1, 1)
           RETURNING group_id""", (fingerprint, ago(days), ago(days))).fetchone()
    assert row is not None
    return int(row[0])


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    tables = ("user_activity_events", "user_sessions", "error_events", "error_groups",
              "learning_journey_events", "page_view_analytics")
    return {t: [r[0] for r in conn.execute(
        f"SELECT to_jsonb(t)::text FROM public.{t} t ORDER BY 1").fetchall()]  # noqa: S608
        for t in tables}


def run_anonymize(db: Database, **kw: Any) -> retention.RunStats:
    return retention.anonymize(db, now=NOW, older_than_days=90, pii_keys=PII_KEYS, **kw)


def run_purge(db: Database, **kw: Any) -> retention.RunStats:
    return retention.purge(db, now=NOW, older_than_days=730, collect_retention_days=30, **kw)


def test_event_at_89_days_is_untouched_and_at_91_days_anonymized(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    young = add_event(conn, 89)
    old = add_event(conn, 91)
    before = conn.execute("SELECT to_jsonb(e) FROM user_activity_events e WHERE event_id = %s",
                          (young,)).fetchone()

    stats = run_anonymize(db)

    after = conn.execute("SELECT to_jsonb(e) FROM user_activity_events e WHERE event_id = %s",
                         (young,)).fetchone()
    assert after == before
    row = conn.execute(
        """SELECT user_id, visitor_hash, network_hash, session_id, event_data, event_type,
                  page_path, duration_ms, page_title, referrer, anonymized_at, utm_campaign
           FROM user_activity_events WHERE event_id = %s""", (old,)).fetchone()
    assert row == (None, None, None, None, SCRUBBED, "quest_completed", "/quests/42", 1500,
                   "Quest for [email]", "https://mail.example/?to=[email]", NOW,
                   "[email]")  # an e-mail in a UTM value survived anonymization before
    assert stats.rows["user_activity_events"] == 1


def test_sessions_errors_and_journey_follow_the_same_boundary(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    for days in (89, 91):
        add_session(conn, days)
        add_error(conn, days)
        add_journey(conn, days)

    stats = run_anonymize(db)

    sessions = conn.execute("SELECT user_id IS NULL, visitor_hash IS NULL, referrer "
                            "FROM user_sessions ORDER BY last_seen_at").fetchall()
    assert sessions == [(True, True, "https://x.test/?e=[email]"),
                        (False, False, "https://x.test/?e=ann@x.org")]
    errors = conn.execute("SELECT user_id, visitor_hash, session_id, message, stack, event_data "
                          "FROM error_events ORDER BY occurred_at").fetchall()
    assert errors[0] == (None, None, None, "no account for [email]", "at send ([phone])",
                         {"endpoint": "/api/x"})
    assert errors[1][0] == USER and errors[1][3] == "no account for ann@x.org"
    journey = conn.execute("SELECT user_id, details, dedupe_key FROM learning_journey_events "
                           "ORDER BY occurred_at").fetchall()
    assert journey[0] == (None, {"quest_id": "q1"}, None)
    assert journey[1] == (USER, {"quest_id": "q1", "name": "Ann"}, f"score:{USER}:89")
    assert {k: stats.rows[k] for k in ("user_sessions", "error_events",
                                       "learning_journey_events")} == {
        "user_sessions": 1, "error_events": 1, "learning_journey_events": 1}


def test_second_anonymize_run_changes_nothing(db: Database,
                                              conn: psycopg.Connection[Any]) -> None:
    for days in (10, 91, 200, 400):
        add_event(conn, days)
        add_session(conn, days)
        add_error(conn, days)
        add_journey(conn, days)
    add_group(conn, 120, "old")
    first = run_anonymize(db)
    before = snapshot(conn)

    second = run_anonymize(db, target_seconds=0.0)

    assert first.total == 13  # 3 old rows in each of four tables + one group message
    assert second.total == 0
    assert snapshot(conn) == before


def test_batches_cover_every_block_exactly_once(db: Database,
                                                conn: psycopg.Connection[Any]) -> None:
    with conn.cursor().copy(
            "COPY user_activity_events (occurred_at, user_id, event_type, event_data) "
            "FROM STDIN") as copy:
        for i in range(6000):
            copy.write_row((ago(100 + i % 50), USER, "page_view",
                            Jsonb({"email": f"u{i}@x.org", "i": i})))
    progressed: list[int] = []

    stats = run_anonymize(db, target_seconds=0.0, first_blocks=16, progress=progressed.append)

    assert stats.rows["user_activity_events"] == 6000
    assert stats.batches > 5
    assert sum(progressed) == stats.blocks
    left = conn.execute("SELECT count(*) FROM user_activity_events "
                        "WHERE user_id IS NOT NULL OR event_data ? 'email'").fetchone()
    assert left == (0,)


def test_anonymize_deletes_old_dead_letters(db: Database,
                                            conn: psycopg.Connection[Any]) -> None:
    for days in (89, 91):
        conn.execute("INSERT INTO waymark.dead_letters (failed_at, kind, error, payload) "
                     "VALUES (%s, 'event', 'bad', %s)", (ago(days), Jsonb({"user_id": str(USER)})))
    stats = run_anonymize(db)
    assert stats.rows["waymark.dead_letters"] == 1
    left = conn.execute("SELECT round(extract(epoch FROM %s - failed_at) / 86400)::int "
                        "FROM waymark.dead_letters", (NOW,)).fetchall()
    assert left == [(89,)]


def test_anonymize_writes_an_audit_row_with_counts_only(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    add_event(conn, 91)
    add_event(conn, 95)
    run_anonymize(db)
    row = conn.execute("SELECT action, details FROM privacy_audit").fetchone()
    assert row is not None
    action, details = row
    assert action == "anonymize"
    assert details["rows"]["user_activity_events"] == 2 and details["total"] == 2
    assert str(USER) not in str(details)


def test_purge_keeps_729_days_and_deletes_731_in_every_table(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    for days in (729, 731):
        add_event(conn, days)
        add_session(conn, days)
        add_journey(conn, days)
        add_error(conn, days, add_group(conn, days, f"g{days}"))
        conn.execute("INSERT INTO page_view_analytics (day, page_path, total_views) "
                     "VALUES (%s, '/home', 3)", ((ago(days)).date(),))
        conn.execute("INSERT INTO event_category_daily (day, event_category, events) "
                     "VALUES (%s, 'quest', 3)", ((ago(days)).date(),))
        conn.execute("INSERT INTO quest_daily (day, quest_id, views) VALUES (%s, 'q1', 3)",
                     ((ago(days)).date(),))

    stats = run_purge(db)

    for table, column in (("user_activity_events", "occurred_at"),
                          ("user_sessions", "last_seen_at"),
                          ("learning_journey_events", "occurred_at"),
                          ("error_events", "occurred_at"), ("error_groups", "last_seen")):
        ages = conn.execute(
            f"SELECT round(extract(epoch FROM %s - {column}) / 86400) FROM {table}",  # noqa: S608
            (NOW,)).fetchall()
        assert [int(a[0]) for a in ages] == [729], table
        assert stats.rows[table] == 1, table
    for daily in ("page_view_analytics", "event_category_daily", "quest_daily"):
        days_left = conn.execute(f"SELECT day FROM {daily}").fetchall()  # noqa: S608
        assert days_left == [(ago(729).date(),)], daily
        assert stats.rows[daily] == 1, daily


def test_collect_and_measure_rows_have_their_own_retention(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    kept_visit = add_event(conn, 29, event_type="landing_visit", data={"url": "/"})
    add_event(conn, 31, event_type="landing_visit", data={"url": "/"})
    add_event(conn, 31, event_type="conversion", data={"event": "first_game_open"})
    kept_view = add_event(conn, 31, event_type="page_view", data={})

    stats = run_purge(db)

    left = {r[0] for r in conn.execute("SELECT event_id FROM user_activity_events").fetchall()}
    assert left == {kept_visit, kept_view}
    assert stats.rows["user_activity_events"] == 2


def test_purge_removes_empty_old_error_groups_only(db: Database,
                                                   conn: psycopg.Connection[Any]) -> None:
    still_used = add_group(conn, 800, "used")
    add_error(conn, 10, still_used)
    add_group(conn, 800, "unused")
    add_group(conn, 10, "recent")
    run_purge(db)
    left = {r[0] for r in conn.execute("SELECT fingerprint FROM error_groups").fetchall()}
    assert left == {"used", "recent"}


def test_second_purge_run_changes_nothing(db: Database, conn: psycopg.Connection[Any]) -> None:
    for days in (5, 700, 731, 900):
        add_event(conn, days)
        add_session(conn, days)
    first = run_purge(db)
    before = snapshot(conn)
    second = run_purge(db)
    assert (first.total, second.total) == (4, 0)
    assert snapshot(conn) == before


def test_pii_hint_matches_the_configured_keys_as_json_keys() -> None:
    hint = retention.pii_hint(["email", "first_name"])
    assert '"(?:email|first_name)": ' in hint


@pytest.mark.parametrize(("text", "expected"), [
    ("mail ann.lee+x@school.example.co.uk now", "mail [email] now"),
    ("tel +1 (555) 123-4567.", "tel [phone]."),
    ("07700900123", "[phone]"),
    ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
    ("quest 7c9e6679-7425-40de-944b-e07fc1f90ae7", "quest 7c9e6679-7425-40de-944b-e07fc1f90ae7"),
    ("id q-1234567 v1.2.3 and 12345", "id q-1234567 v1.2.3 and 12345"),
])
def test_scrub_text_patterns(conn: psycopg.Connection[Any], text: str, expected: str) -> None:
    assert conn.execute("SELECT waymark.scrub_text(%s)", (text,)).fetchone() == (expected,)
