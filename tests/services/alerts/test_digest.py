"""`waymark digest` against a real SMTP server: RLS-scoped per recipient, small classes
withheld, once per recipient and week."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alerts_support import smtp_server
from analytics_support import add_event

from backend.config import AlertSettings
from backend.db import Database
from backend.services.alerts import digest


def _id(tag: str) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{tag:0>12}")


BIG, SMALL = _id("c1"), _id("c2")
BIG_STUDENTS = [_id(f"5{n}") for n in range(5)]       # 5: figures shown
SMALL_STUDENTS = [_id(f"6{n}") for n in range(2)]     # 2: withheld
T_BIG, T_SMALL, PARENT = _id("7e1"), _id("7e2"), _id("91")
NOW = datetime.now(UTC)


@pytest.fixture
def school(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Maths'), (%s, 'Art')",
                 (BIG, SMALL))
    rows = [(BIG, s, "student") for s in BIG_STUDENTS] + [
        (SMALL, s, "student") for s in SMALL_STUDENTS] + [
        (BIG, T_BIG, "teacher"), (SMALL, T_SMALL, "teacher")]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO class_memberships (class_id, user_id, member_role) "
                        "VALUES (%s, %s, %s)", rows)
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, BIG_STUDENTS[0]))
    for i, student in enumerate([*BIG_STUDENTS, *SMALL_STUDENTS]):
        for days_ago, score in ((8, 0.3), (0, 0.3 + 0.1 * i)):
            conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone,"
                         " risk_score) VALUES (%s, %s, 'risk_assessment', %s)",
                         (student, NOW - timedelta(days=days_ago, minutes=1), score))
        add_event(conn, "login_success", NOW - timedelta(days=1), user_id=student)
    conn.execute("CREATE SCHEMA host")
    conn.execute("CREATE TABLE host.addresses (user_id uuid, email text)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO host.addresses VALUES (%s, %s)", [
            (T_BIG, "big@school.test"), (T_SMALL, "small@school.test"),
            (PARENT, "parent@home.test")])


def run(db: Database, smtp: str) -> digest.DigestCounts:
    chosen = AlertSettings(smtp_url=smtp, address_view="host.addresses")
    return digest.send_digests(db, chosen, now=NOW, min_group_size=5)


def test_each_digest_mentions_only_students_its_recipient_may_see(
        db: Database, school: None) -> None:
    with smtp_server() as (smtp, inbox):
        counts = run(db, smtp)
    assert (counts.recipients, counts.delivered) == (3, 3)
    by_to = {str(m["To"]): m.get_body(("plain",)).get_content() for m in inbox}
    parent = by_to["parent@home.test"]
    assert parent.count("Your child") == 1 and "risk" not in parent
    assert "less engaged than last week" not in parent   # 0.3 → 0.3: about the same
    big, small = by_to["big@school.test"], by_to["small@school.test"]
    for student in BIG_STUDENTS:
        assert str(student) in big and str(student) not in small
    for student in SMALL_STUDENTS:
        assert str(student) in small and str(student) not in big
    assert str(BIG_STUDENTS[0]) in parent and str(BIG_STUDENTS[1]) not in parent
    assert "Maths: 5 students, 0 flagged, mean risk 0.50" in big   # 0.3 … 0.7, threshold 0.8
    assert "Art: fewer than 5 students, class figures withheld" in small
    assert "Maths" not in small and "Art" not in big


def test_a_digest_is_sent_once_per_week_even_by_concurrent_runs(
        db: Database, db_url: str, school: None) -> None:
    with smtp_server() as (smtp, inbox):
        barrier = threading.Barrier(2)

        def one_run() -> None:
            other = Database(db_url, min_size=1, max_size=2)
            other.open(wait=True)
            try:
                barrier.wait()
                run(other, smtp)
            finally:
                other.close()

        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        again = run(db, smtp)
    assert Counter(str(m["To"]) for m in inbox) == Counter(
        {"big@school.test": 1, "small@school.test": 1, "parent@home.test": 1})
    assert again.already_sent == 3
