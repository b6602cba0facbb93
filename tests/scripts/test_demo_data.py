"""The demo/benchmark generator: exact counts, determinism, links and error groups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.scripts import demo_data

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _fingerprint(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT event_type, occurred_at, user_id, page_path, event_data::text "
        "FROM user_activity_events ORDER BY event_id").fetchall()


def test_load_writes_exactly_the_requested_events(conn: psycopg.Connection[Any]) -> None:
    summary = demo_data.load(conn, events=3000, students=40, days=30, seed=7, now=NOW)
    count, latest, earliest = conn.execute(
        "SELECT count(*), max(occurred_at), min(occurred_at) FROM user_activity_events").fetchone()
    assert (summary.events, count) == (3000, 3000)
    assert latest <= NOW
    conn.execute("ANALYZE user_activity_events")
    correlation = conn.execute(
        "SELECT correlation FROM pg_stats WHERE tablename = 'user_activity_events' "
        "AND attname = 'occurred_at'").fetchone()[0]
    assert correlation > 0.99  # stored in time order, like real ingestion (BRIN relies on it)
    unsummarized = conn.execute(
        "SELECT sum(brin_summarize_new_values(i.indexrelid)) FROM pg_index i "
        "JOIN pg_inherits p ON p.inhrelid = i.indrelid JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam "
        "WHERE p.inhparent = 'public.user_activity_events'::regclass AND a.amname = 'brin'"
    ).fetchone()
    assert unsummarized == (0,)  # the load summarized its block ranges already
    assert (NOW - earliest).days <= 30
    errors = conn.execute("SELECT count(*) FROM error_events").fetchone()[0]
    error_rows = conn.execute(
        "SELECT count(*) FROM user_activity_events WHERE event_category = 'error'").fetchone()[0]
    assert errors == error_rows == summary.errors
    occurrences = conn.execute("SELECT coalesce(sum(occurrences), 0) FROM error_groups").fetchone()[0]
    assert occurrences == errors


def test_load_is_deterministic_for_a_seed(conn: psycopg.Connection[Any], db_url: str) -> None:
    demo_data.load(conn, events=500, students=20, days=10, seed=3, now=NOW)
    first = _fingerprint(conn)
    conn.execute("TRUNCATE user_activity_events, error_events, error_groups, guardian_links")
    demo_data.load(conn, events=500, students=20, days=10, seed=3, now=NOW)
    assert _fingerprint(conn) == first
    conn.execute("TRUNCATE user_activity_events, error_events, error_groups, guardian_links")
    demo_data.load(conn, events=500, students=20, days=10, seed=4, now=NOW)
    assert _fingerprint(conn) != first


def test_parents_are_linked_to_students_with_events(conn: psycopg.Connection[Any]) -> None:
    summary = demo_data.load(conn, events=4000, students=30, days=20, seed=1, now=NOW)
    links = conn.execute("SELECT parent_id, student_id FROM guardian_links").fetchall()
    assert len(links) == summary.guardian_links >= summary.parents == 10
    students = {row[0] for row in conn.execute(
        "SELECT DISTINCT user_id FROM user_activity_events WHERE event_type = 'quest_viewed'")}
    assert {student for _, student in links} <= students
    assert not {parent for parent, _ in links} & students


def test_campaign_visits_carry_source_medium_and_campaign(conn: psycopg.Connection[Any]) -> None:
    demo_data.load(conn, events=5000, students=20, days=20, seed=2, now=NOW)
    rows = set(conn.execute(
        "SELECT utm_source, utm_medium, utm_campaign FROM user_activity_events "
        "WHERE event_type = 'landing_visit'").fetchall())
    assert ("instagram", "social", "spring_launch") in rows
    assert (None, None, None) in rows
    assert rows <= set(demo_data.CAMPAIGNS)


def test_the_demo_school_has_classes_with_teachers(conn: psycopg.Connection[Any]) -> None:
    summary = demo_data.load(conn, events=3000, students=60, days=20, seed=2, now=NOW)
    classes = conn.execute("""
        SELECT k.name, count(*) FILTER (WHERE m.member_role = 'teacher'),
               count(*) FILTER (WHERE m.member_role = 'student')
        FROM classes k JOIN class_memberships m USING (class_id)
        GROUP BY k.name ORDER BY k.name""").fetchall()
    assert summary.classes == len(classes) == 4  # 24 + 24 + 12 students, and the club
    assert {name: (teachers, students) for name, teachers, students in classes} == {
        "Year 7 Maths": (1, 24), "Year 7 Science": (1, 24), "Year 8 English": (1, 12),
        "Robotics club": (1, demo_data.CLUB[1])}
    teachers = {row[0] for row in conn.execute(
        "SELECT user_id FROM class_memberships WHERE member_role = 'teacher'")}
    assert len(teachers) == 3 and set(summary.sample_teacher_ids) <= {str(t) for t in teachers}
    active = {row[0] for row in conn.execute("SELECT DISTINCT user_id FROM user_activity_events")}
    assert not teachers & active
    in_classes = {row[0] for row in conn.execute(
        "SELECT user_id FROM class_memberships WHERE member_role = 'student'")}
    assert len(in_classes) == 60 and len(in_classes & active) >= 50  # some never came back
