"""Sessions from events: 30-minute gaps, continuation across batches, launches, bounces."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from backend.services.ingest import session_segments as sessions

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
COLUMNS = sql.SQL(", ").join(map(sql.Identifier, (
    "session_id", "user_id", "visitor_hash", "started_at", "last_seen_at", "duration_seconds",
    "page_count", "event_count", "is_bounce", "is_app_launch", "browser", "os", "device_type",
    "entry_page", "exit_page", "referrer", "utm_source", "utm_medium", "utm_campaign")))


def row(minutes: float, user: uuid.UUID | None = None, visitor: bytes | None = b"v1",
        event_type: str = "page_view", page: str | None = "/p", source: str = "client",
        **extra: Any) -> dict[str, Any]:
    return {"occurred_at": T0 + timedelta(minutes=minutes), "user_id": user,
            "visitor_hash": visitor, "event_type": event_type, "page_path": page,
            "source": source, **extra}


def test_segments_split_on_gaps_over_30_minutes_per_person() -> None:
    user = uuid.uuid4()
    rows = [row(0), row(10), row(45), row(5, user=user), row(2, visitor=b"v2"),
            row(1, visitor=b"v3", source="server")]
    segments = sessions.segments_of(rows)
    by_start = sorted((s.started_at, s.event_count, s.first_of_key) for s in segments)
    assert by_start == [(T0, 2, True), (T0 + timedelta(minutes=2), 1, True),
                        (T0 + timedelta(minutes=5), 1, True),
                        (T0 + timedelta(minutes=45), 1, False)]
    assert rows[5].get("session_id") is None  # anonymous server events open no session


def test_page_count_bounce_entry_and_exit(conn: psycopg.Connection[Any]) -> None:
    rows = [row(0, page="/in", referrer="https://r.example", utm_source="news"),
            row(1, event_type="quest_viewed", page="/q"), row(2, page="/out")]
    with conn.transaction():
        sessions.record_sessions(conn, rows, [])
    stored = conn.execute(
        "SELECT page_count, event_count, is_bounce, entry_page, exit_page, referrer, utm_source, "
        "duration_seconds FROM user_sessions").fetchall()
    assert stored == [(2, 3, False, "/in", "/out", "https://r.example", "news", 120)]
    assert len({r["session_id"] for r in rows}) == 1


def test_a_later_batch_continues_the_open_session_or_opens_a_new_one(
        conn: psycopg.Connection[Any]) -> None:
    user = uuid.uuid4()
    first = [row(0, user=user)]
    sessions.record_sessions(conn, first, [])
    soon = [row(20, user=user, visitor=b"other-period-hash")]
    sessions.record_sessions(conn, soon, [])
    assert soon[0]["session_id"] == first[0]["session_id"]
    late = [row(90, user=user)]
    sessions.record_sessions(conn, late, [])
    assert late[0]["session_id"] != first[0]["session_id"]
    stored = conn.execute("SELECT page_count, is_bounce, duration_seconds FROM user_sessions "
                          "ORDER BY started_at").fetchall()
    assert stored == [(2, False, 1200), (1, True, 0)]


def test_each_launch_ping_is_a_session_that_events_continue(
        conn: psycopg.Connection[Any]) -> None:
    pings = [row(0, page="/home"), row(60, page="/home")]
    events = [row(61, page="/quests")]
    sessions.record_sessions(conn, events, pings)
    stored = conn.execute("SELECT is_app_launch, page_count, entry_page, exit_page "
                          "FROM user_sessions ORDER BY started_at").fetchall()
    assert stored == [(True, 0, "/home", "/home"), (True, 1, "/home", "/quests")]


def test_the_one_json_parameter_stores_every_column_and_a_merge_adds_to_them(
        conn: psycopg.Connection[Any]) -> None:
    """What waymark.upsert_sessions stores from the JSON document: text that needs escaping,
    a binary visitor hash, and a later segment of the same session merged into it."""
    user = uuid.uuid4()
    rows = [row(0, page="/in", referrer="https://r.example/é?a='b'", utm_source="news",
                browser="Chrome", os="Mac OS X", device_type="desktop"),
            row(1, event_type="quest_viewed", page=None, visitor=b"\x00\xff\x10"),
            row(3, user=user, utm_campaign='q"uote', device_type="mobile"), row(50, user=user)]
    segments = sessions.segments_of(rows)
    for encoded in (None, sessions.segments_json(segments)):  # encoded here or beforehand
        with conn.transaction():
            assert sessions.upsert_sessions(conn, segments, None, encoded) == 4
        stored = conn.execute(sql.SQL("SELECT {} FROM user_sessions ORDER BY started_at, user_id"
                                      ).format(COLUMNS)).fetchall()
        assert stored == [
            (segments[0].session_id, None, b"v1", T0, T0, 0, 1, 1, True, False, "Chrome",
             "Mac OS X", "desktop", "/in", "/in", "https://r.example/é?a='b'", "news", None,
             None),
            (segments[1].session_id, None, b"\x00\xff\x10", T0 + timedelta(minutes=1),
             T0 + timedelta(minutes=1), 0, 0, 1, True, False, None, None, None, None, None,
             None, None, None, None),
            (segments[2].session_id, user, b"v1", T0 + timedelta(minutes=3),
             T0 + timedelta(minutes=3), 0, 1, 1, True, False, None, None, "mobile", "/p", "/p",
             None, None, None, 'q"uote'),
            (segments[3].session_id, user, b"v1", T0 + timedelta(minutes=50),
             T0 + timedelta(minutes=50), 0, 1, 1, True, False, None, None, None, "/p", "/p",
             None, None, None, None)]
        conn.execute("DELETE FROM user_sessions")
    first, later = [row(0, page="/a")], [row(20, page="/b", utm_source="late")]
    sessions.record_sessions(conn, first, [])
    sessions.record_sessions(conn, later, [])  # continues the open session: counts add up
    stored = conn.execute(sql.SQL("SELECT {} FROM user_sessions").format(COLUMNS)).fetchall()
    assert stored == [(first[0]["session_id"], None, b"v1", T0, T0 + timedelta(minutes=20),
                       1200, 2, 2, False, False, None, None, None, "/a", "/b", None, "late",
                       None, None)]
