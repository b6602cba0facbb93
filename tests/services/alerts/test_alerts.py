"""Alerts end to end against real receivers: an aiosmtpd SMTP server and a local HTTP
webhook receiver that checks the signature. Stored assessments are written directly (the
score job's output); crossings, deliveries, retries and forget are Waymark's own."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alerts_support import SECRET, address_server, smtp_server, webhook_receiver
from psycopg.types.json import Jsonb

from backend.config import AlertSettings
from backend.db import Database
from backend.scripts.alert_jobs import run_alerts
from backend.services.alerts import crossings, deliveries
from backend.services.analytics import risk
from backend.services.analytics.risk import CALIBRATED_PARAMS
from backend.services.privacy.forget import forget_user


def _id(tag: str) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{tag:0>12}")


NOW = datetime.now(UTC)
MATHS = _id("c1")
S1, S2, S3 = _id("51"), _id("52"), _id("53")   # S1, S2 in maths; S3 in no class
TEACHER, P1, P2, ADMIN = _id("7e"), _id("91"), _id("92"), _id("ad")
ADDRESSES = {TEACHER: "teacher@school.test", P1: "p1@home.test", P2: "p2@home.test",
             ADMIN: "admin@school.test"}
FACTORS = [{"name": "inactivity", "value": 1.0, "weight": 0.4, "contribution": 0.4},
           {"name": "low_quest_completion", "value": 0.9, "weight": 0.2, "contribution": 0.18},
           {"name": "short_sessions", "value": 0.0, "weight": 0.1, "contribution": 0.0}]


@pytest.fixture
def school(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Maths')", (MATHS,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) VALUES "
                 "(%s, %s, 'student'), (%s, %s, 'student'), (%s, %s, 'teacher')",
                 (MATHS, S1, MATHS, S2, MATHS, TEACHER))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s), (%s, %s)",
                 (P1, S1, P2, S3))
    conn.execute("CREATE SCHEMA host")
    conn.execute("CREATE TABLE host.addresses (user_id uuid PRIMARY KEY, email text)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO host.addresses VALUES (%s, %s)", list(ADDRESSES.items()))


def assess(conn: psycopg.Connection[Any], student: uuid.UUID, score: float,
           days_ago: int, factors: list[dict[str, Any]] = FACTORS) -> None:
    at = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
    conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone, "
                 "risk_score, details) VALUES (%s, %s, 'risk_assessment', %s, %s)",
                 (student, at, score, Jsonb({"factors": factors})))


def settings(smtp: str | None = None, webhook: str | None = None, **extra: Any) -> AlertSettings:
    return AlertSettings(smtp_url=smtp, webhook_url=webhook, webhook_secret=SECRET,
                         address_view="host.addresses", retry_base_seconds=0.05,
                         student_url="https://school.test/students/{student_id}", **extra)


def recipients(inbox: list[Any]) -> Counter[str]:
    return Counter(str(m["To"]) for m in inbox)


def test_emails_reach_who_may_see_the_student_written_for_each(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.5, 3)
    assess(conn, S1, 0.91, 0)      # S1 crosses in: maths teacher and P1
    assess(conn, S2, 0.85, 0)      # S2, first assessment already flagged: the teacher only
    assess(conn, S3, 0.2, 0)       # never flagged: P2 hears nothing
    with smtp_server() as (smtp, inbox):
        counts = run_alerts(db, settings(smtp), wait_seconds=0)
    assert counts["crossings"] == 2 and counts["delivered"] == 3
    assert recipients(inbox) == Counter({"teacher@school.test": 2, "p1@home.test": 1})
    parent = next(m for m in inbox if m["To"] == "p1@home.test")
    text = parent.get_body(("plain",)).get_content()
    html = parent.get_body(("html",)).get_content()
    assert "conversation" in html.lower() and "What was the last thing" in text
    assert "0.91" not in text and "0.91" not in html and "score" not in text.lower()
    assert f"https://school.test/students/{S1}" in text
    teacher = [m.get_body(("plain",)).get_content() for m in inbox
               if m["To"] == "teacher@school.test"]
    body = next(text for text in teacher if str(S1) in text)   # the link names the student
    assert "0.91" in body and "has not been active for a while" in body
    assert "starts quests but rarely finishes them" in body


def test_the_teachers_email_says_each_factor_as_the_dashboard_does(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    """Factors stored as ``waymark score`` stores them carry their sentence; the e-mail says it."""
    student = {"user_id": S1, "first_at": NOW - timedelta(days=80), "last_at": None,
               "active_days": 0, "login_events": 0, "recent_active_days": 0,
               "quests_started": 0, "quests_completed": 0, "sessions": 0,
               "avg_session_minutes": None, "longest_streak": 0, "current_streak": 0,
               "quests_due": 5, "quests_missed": 4, "quests_late": 1, "scored_quests": 1,
               "mean_xp": 70.0}
    stored = [f.as_dict() for f in risk.assess(student, now=NOW, params=CALIBRATED_PARAMS).factors]
    assess(conn, S1, 0.91, 0, stored)
    with smtp_server() as (smtp, inbox):
        run_alerts(db, settings(smtp), wait_seconds=0)
    teacher = next(m for m in inbox if m["To"] == "teacher@school.test")
    text = teacher.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = teacher.get_body(("html",)).get_content()
    assert ("Why:\n- mean score 62 over 1 scored quest and 4 missed quests counted as 60 in "
            "the last 84 days (target 100, floor 60)\n- missed 4 of 5 quests due in the last "
            "84 days; missing 50 % of them counts in full\n- handed in 1 of 5 quests due in the "
            "last 84 days after the deadline; 50 % of them late counts in full\n") in text
    assert "<li>missed 4 of 5 quests due in the last 84 days" in html
    assert "the student has" not in text


def test_webhook_failing_twice_then_succeeding_delivers_exactly_once(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.95, 0)
    with webhook_receiver(fail_first=2) as (url, seen):
        counts = run_alerts(db, settings(webhook=url, admins=(str(ADMIN),)), wait_seconds=5)
    assert counts["delivered"] == 1 and counts["retried"] == 2
    assert len(seen.requests) == 3 and len(seen.accepted) == 1
    assert len({r["delivery"] for r in seen.requests}) == 1   # one delivery id throughout
    body = seen.accepted[0]["body"]
    assert seen.accepted[0]["signed"] and body["student_id"] == str(S1)
    assert body["direction"] == "entered" and body["first_flagged_at"] is not None
    assert body["factors"][0] == "has not been active for a while"
    assert {(r["user_id"], r["relation"]) for r in body["recipients"]} == {
        (str(TEACHER), "teacher"), (str(P1), "parent"), (str(ADMIN), "admin")}
    log = conn.execute("SELECT channel, status, attempts, recipient_id, last_error "
                       "FROM alert_deliveries").fetchall()
    assert log == [("webhook", "delivered", 3, None, None)]


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.95, 0)
    with webhook_receiver() as (url, seen):
        wrong = AlertSettings(webhook_url=url, webhook_secret="not-the-secret")
        counts = run_alerts(db, wrong, wait_seconds=0)
    assert counts["failed"] == 1 and len(seen.requests) == 1 and not seen.requests[0]["signed"]
    assert conn.execute("SELECT status FROM alert_deliveries").fetchone() == ("failed",)


def test_rerunning_sends_nothing_new_and_leaving_is_a_new_crossing(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.4, 2)
    assess(conn, S1, 0.9, 1)
    with smtp_server() as (smtp, inbox), webhook_receiver() as (url, seen):
        first = run_alerts(db, settings(smtp, url), wait_seconds=0)
        again = run_alerts(db, settings(smtp, url), wait_seconds=0)
        assert (first["delivered"], again["crossings"], again["delivered"]) == (3, 0, 0)
        assert len(inbox) == 2 and len(seen.accepted) == 1
        assess(conn, S1, 0.3, 0)   # drops back out: a crossing of its own
        left = run_alerts(db, settings(smtp, url), wait_seconds=0)
    assert left["crossings"] == 1 and len(inbox) == 4
    assert seen.accepted[-1]["body"]["direction"] == "left"
    assert any("back on track" in str(m["Subject"]) for m in inbox)


def test_two_concurrent_runs_send_each_alert_once(
        db: Database, db_url: str, conn: psycopg.Connection[Any], school: None) -> None:
    for student in (S1, S2, S3):
        assess(conn, student, 0.2, 1)
        assess(conn, student, 0.9, 0)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    with smtp_server() as (smtp, inbox), webhook_receiver() as (url, seen):
        def one_run() -> None:
            other = Database(db_url, min_size=1, max_size=2)
            other.open(wait=True)
            try:
                barrier.wait()
                results.append(run_alerts(other, settings(smtp, url), wait_seconds=0))
            finally:
                other.close()

        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sum(r["crossings"] for r in results) == 3
    assert sum(r["delivered"] for r in results) == 3 + 4   # 3 webhooks, 4 e-mails
    assert recipients(inbox) == Counter({"teacher@school.test": 2, "p1@home.test": 1,
                                         "p2@home.test": 1})
    assert Counter(r["body"]["student_id"] for r in seen.accepted) == Counter(
        {str(S1): 1, str(S2): 1, str(S3): 1})


def test_a_parent_is_never_sent_a_student_who_is_not_theirs(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S2, 0.99, 0)      # S2 has no parent; P1 is S1's, P2 is S3's
    with smtp_server() as (smtp, inbox):
        run_alerts(db, settings(smtp, admins=(str(ADMIN),)), wait_seconds=0)
    assert recipients(inbox) == Counter({"teacher@school.test": 1, "admin@school.test": 1})


def test_a_forgotten_students_pending_alerts_are_dropped(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.95, 0)
    assess(conn, S2, 0.95, 0)
    chosen = settings("smtp://127.0.0.1:1", "http://127.0.0.1:1/")
    with db.connection() as c:
        assert crossings.find_and_plan(c, chosen, now=datetime.now(UTC)) == (2, 5)
    receipt = forget_user(db, S1, now=datetime.now(UTC))
    assert receipt.rows_removed["alert_crossings"] == 1
    with smtp_server() as (smtp, inbox), webhook_receiver() as (url, seen):
        counts = deliveries.deliver_due(db, settings(smtp, url), clock=lambda: datetime.now(UTC))
    assert counts.delivered == 2    # S2: teacher e-mail and webhook; nothing about S1
    assert recipients(inbox) == Counter({"teacher@school.test": 1})
    assert [r["body"]["student_id"] for r in seen.accepted] == [str(S2)]
    # and the score job's tombstone keeps a forgotten student from crossing again
    assess(conn, S1, 0.97, 0)
    with db.connection() as c:
        assert crossings.find_and_plan(c, chosen, now=datetime.now(UTC)) == (0, 0)


def test_recipients_without_an_address_are_skipped_not_retried(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    conn.execute("DELETE FROM host.addresses WHERE user_id <> %s", (TEACHER,))
    assess(conn, S1, 0.95, 0)
    with smtp_server() as (smtp, inbox):
        counts = run_alerts(db, settings(smtp), wait_seconds=0)
    assert (counts["delivered"], counts["skipped"]) == (1, 1)
    assert conn.execute("SELECT recipient_role, last_error FROM alert_deliveries "
                        "WHERE status = 'skipped'").fetchall() == [
        ("parent", "no address for this recipient")]


def test_addresses_can_come_from_the_host_apps_signed_lookup(
        db: Database, conn: psycopg.Connection[Any], school: None) -> None:
    assess(conn, S1, 0.95, 0)      # teacher and P1; the lookup knows only the teacher
    with smtp_server() as (smtp, inbox), address_server(
            {str(TEACHER): "from-lookup@school.test"}) as (lookup, asked):
        chosen = AlertSettings(smtp_url=smtp, address_url=lookup, webhook_secret=SECRET)
        counts = run_alerts(db, chosen, wait_seconds=0)
    assert sorted(asked) == sorted([str(TEACHER), str(P1)])
    assert (counts["delivered"], counts["skipped"]) == (1, 1)
    assert recipients(inbox) == Counter({"from-lookup@school.test": 1})
