"""The demo/benchmark generator: exact counts, determinism, links and error groups."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
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


def test_coursework_gives_each_class_a_quest_a_week_with_a_deadline(
        conn: psycopg.Connection[Any]) -> None:
    summary = demo_data.load(conn, events=6000, students=60, days=30, seed=2, now=NOW,
                             coursework=True)
    assigned = conn.execute("""
        SELECT e.user_id, e.occurred_at, e.event_data->>'quest_id',
               (e.event_data->>'due_at')::timestamptz, e.source, k.name
        FROM user_activity_events e
        JOIN class_memberships m ON m.user_id = e.user_id AND m.member_role = 'student'
        JOIN classes k USING (class_id)
        WHERE e.event_type = 'quest_assigned' AND k.name <> %s""",
                            (demo_data.CLUB[0],)).fetchall()
    assert len(assigned) == summary.assignments > 0
    assert all(due - at == timedelta(days=demo_data.DUE_AFTER_DAYS) and source == "server"
               for _, at, _, due, source, _ in assigned)
    # one quest per class and week, the same for the whole class, a new one each week
    per_week: dict[tuple[str, datetime], set[str]] = {}
    for _, at, quest, _, _, name in assigned:
        per_week.setdefault((name, at), set()).add(quest)
    assert all(len(quests) == 1 for quests in per_week.values())
    weeks = {at for _, at in per_week}
    assert len(weeks) == math.ceil(30 / demo_data.ASSIGN_EVERY_DAYS)
    # handed in (on the quest's submit page) mostly on time, some late, some never
    on_time, late, never = conn.execute("""
        SELECT count(*) FILTER (WHERE c.at <= (a.event_data->>'due_at')::timestamptz),
               count(*) FILTER (WHERE c.at > (a.event_data->>'due_at')::timestamptz),
               count(*) FILTER (WHERE c.at IS NULL)
        FROM user_activity_events a
        LEFT JOIN LATERAL (
            SELECT min(c.occurred_at) AS at FROM user_activity_events c
            WHERE c.user_id = a.user_id AND c.event_type = 'quest_completed'
              AND c.page_path = '/quests/' || (a.event_data->>'quest_id') || '/submit'
              AND c.occurred_at > a.occurred_at) c ON true
        WHERE a.event_type = 'quest_assigned'""").fetchone()
    assert on_time > late > 0 and never > 0


def test_drifting_students_withdraw_after_going_quiet_and_get_no_work_after(
        conn: psycopg.Connection[Any]) -> None:
    summary = demo_data.load(conn, events=20000, students=120, days=90, seed=1, now=NOW,
                             coursework=True)
    rows = conn.execute("""
        SELECT w.user_id, w.occurred_at,
               (SELECT max(occurred_at) FROM user_activity_events e
                 WHERE e.user_id = w.user_id AND e.event_type NOT IN
                       ('course_withdrawn', 'quest_assigned')) AS last_active,
               (SELECT count(*) FROM user_activity_events e
                 WHERE e.user_id = w.user_id AND e.occurred_at > w.occurred_at) AS after
        FROM user_activity_events w WHERE w.event_type = 'course_withdrawn'""").fetchall()
    assert len(rows) == summary.withdrawals > 0
    for user, withdrawn, last_active, after in rows:
        # quiet for at least a week first (their last session may come before their last day)
        assert withdrawn - last_active > timedelta(days=demo_data.WITHDRAW_AFTER_DAYS[0] - 1), user
        assert after == 0, user  # nothing assigned, nothing done after withdrawing
    # the sessions are the same with coursework or without: it draws from its own stream
    with_work = set(conn.execute(
        "SELECT event_type, occurred_at, user_id, page_path FROM user_activity_events").fetchall())
    conn.execute("TRUNCATE user_activity_events, error_events, error_groups, guardian_links, "
                 "classes CASCADE")
    demo_data.load(conn, events=20000, students=120, days=90, seed=1, now=NOW)
    without = set(conn.execute(
        "SELECT event_type, occurred_at, user_id, page_path FROM user_activity_events").fetchall())
    assert without < with_work
