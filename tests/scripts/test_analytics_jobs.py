"""``waymark rollup | score | milestones | demo``: idempotent, locked, one summary line."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import HISTORY_DAYS, add_event
from click.testing import CliRunner, Result

from backend.db import Database
from backend.scripts import analytics_jobs
from backend.scripts.cli import main
from backend.services.analytics import risk
from backend.services.analytics.at_risk import at_risk_students
from backend.services.analytics.risk import parameter_sets
from backend.services.jobs import job_lock

A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
PARENT = uuid.UUID("00000000-0000-4000-8000-0000000000c3")


def waymark(db_url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def summary(result: Result) -> dict[str, str]:
    last = result.output.strip().splitlines()[-1]
    return dict(part.split("=", 1) for part in last.split(": ", 1)[1].split())


def _three_days(conn: psycopg.Connection[Any]) -> None:
    """A active on the last three days (today included), B once; P is A's parent."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(3):
        day = today - timedelta(days=n) + timedelta(minutes=5)
        add_event(conn, "page_view", day, user_id=A, page_path="/", session_id=uuid.uuid4())
        add_event(conn, "quest_completed", day + timedelta(minutes=1), user_id=A,
                  data={"quest_id": f"q{n}", "pillar": "arts", "xp": 5})
    add_event(conn, "badge_earned", today - timedelta(days=1), user_id=A, data={"badge_id": "b"})
    add_event(conn, "page_view", today - timedelta(days=2), user_id=B, page_path="/x")
    add_event(conn, "parent_dashboard_opened", today, user_id=PARENT)
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, A))
    conn.execute("UPDATE user_activity_events SET received_at = now() - interval '1 hour'")


def test_rollup_fills_closed_days_once(db_url: str, conn: psycopg.Connection[Any]) -> None:
    _three_days(conn)
    first = summary(waymark(db_url, "rollup"))
    assert (first["days"], first["pages"]) == ("2", "3")  # two closed days: "/" ×2, "/x"
    days = conn.execute("SELECT DISTINCT day FROM page_view_analytics ORDER BY day").fetchall()
    assert len(days) == 2 and days[-1][0] == datetime.now(UTC).date() - timedelta(days=1)
    assert int(first["hours"]) == datetime.now(UTC).hour  # today's closed hours
    second = summary(waymark(db_url, "rollup"))
    assert (second["days"], second["pages"], second["hours"]) == ("0", "0", "0")


def test_a_second_concurrent_run_says_the_lock_is_held(db_url: str) -> None:
    db = Database(db_url, min_size=0, max_size=1)
    for job in ("rollup", "score", "milestones", "demo"):
        with job_lock(db, job) as acquired:
            assert acquired
            result = waymark(db_url, job)
        assert summary(result) == {"status": "skipped", "reason": "another-run-holds-the-lock"}


def test_score_writes_one_assessment_per_student_per_day(db_url: str,
                                                         conn: psycopg.Connection[Any]) -> None:
    _three_days(conn)
    first = summary(waymark(db_url, "score"))
    assert (first["students"], first["written"]) == ("2", "2")  # the parent is not scored
    rows = conn.execute(
        "SELECT user_id, risk_score, engagement_level, details FROM learning_journey_events "
        "WHERE milestone = 'risk_assessment' ORDER BY user_id").fetchall()
    assert [r[0] for r in rows] == [A, B]
    for _, score, level, details in rows:
        assert 0 <= score <= 1 and details["level"] == level
        assert [f["name"] for f in details["factors"]][0] == "inactivity"
    waymark(db_url, "score")
    count = conn.execute("SELECT count(*) FROM learning_journey_events "
                         "WHERE milestone = 'risk_assessment'").fetchone()
    assert count == (2,)


def test_milestones_quests_badges_and_streaks_once(db_url: str,
                                                   conn: psycopg.Connection[Any]) -> None:
    _three_days(conn)
    first = summary(waymark(db_url, "milestones"))
    rows = conn.execute(
        "SELECT milestone, user_id, details FROM learning_journey_events "
        "ORDER BY milestone, occurred_at").fetchall()
    kinds = [(r[0], r[1]) for r in rows]
    assert kinds.count(("quest_completed", A)) == 3
    assert kinds.count(("badge_earned", A)) == 1
    streaks = [r[2] for r in rows if r[0] == "streak_reached"]
    assert [s["days"] for s in streaks] == [3]  # A reached 3 days today; B's 1 day is none
    assert first["added"] == "5"
    second = summary(waymark(db_url, "milestones"))
    assert second["added"] == "0"


def test_demo_loads_once_when_asked_if_empty(db_url: str, conn: psycopg.Connection[Any]) -> None:
    result = summary(waymark(db_url, "demo", "--students", "20", "--events", "3000",
                             "--days", "14", "--if-empty"))
    written = int(result["events"])  # 3,000 in sessions, the coursework on top
    assert written > 3000 and int(result["assignments"]) > 0 and result["students"] == "20"
    assert conn.execute("SELECT count(*) FROM user_activity_events").fetchone() == (written,)
    # today's score and the weekly past ones (risk over time has a history): at most one
    # assessment per student and scoring day
    scored = conn.execute("SELECT count(DISTINCT occurred_at::date), max(n) FROM ("
                          " SELECT occurred_at, count(*) AS n FROM learning_journey_events"
                          " WHERE milestone = 'risk_assessment' GROUP BY occurred_at) d"
                          ).fetchone()
    assert scored is not None and scored[0] >= 2 and 0 < scored[1] <= 20
    again = summary(waymark(db_url, "demo", "--if-empty"))
    assert again == {"status": "skipped", "reason": "database-has-events"}
    assert conn.execute("SELECT count(*) FROM user_activity_events").fetchone() == (written,)


def test_demo_scores_with_its_own_set_and_every_answer_names_it(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    """The demo's hand-chosen set (class-relative factors included) is active, labelled as
    the demo's (no held-out AUC), and today's stored scores are the at-risk answer's."""
    waymark(db_url, "demo", "--students", "60", "--events", "12000", "--days", "30")
    active = parameter_sets.active_set(conn)
    assert active is not None and active.params == analytics_jobs.DEMO_RISK_PARAMS
    assert (active.source, active.validation_auc) == ("waymark demo", None)
    answer = at_risk_students(conn, now=datetime.now(UTC), threshold=0.0, limit=500,
                              params=replace(risk.DEFAULT_PARAMS, window_days=30),
                              history_days=HISTORY_DAYS)
    assert answer["parameter_set"] == active.label()
    withdrawn = conn.execute("SELECT count(DISTINCT user_id) FROM user_activity_events "
                             "WHERE event_type = 'course_withdrawn'").fetchone()
    assert withdrawn is not None and withdrawn[0] > 0
    # every demo student but those who withdrew (docs/risk.md, "Who is scored")
    assert answer["source"] == "stored" and answer["students_scored"] == 60 - withdrawn[0]
    names = {f["name"] for s in answer["students"] for f in s["factors"]}
    assert {"days_behind_cohort", "below_cohort_activity", "below_cohort_scores"} <= names
    assert all(f["explanation"] for s in answer["students"] for f in s["factors"])


def test_alerts_job_is_locked_idempotent_and_summarised(db_url: str,
                                                        conn: psycopg.Connection[Any]) -> None:
    """`waymark alerts` with no channel configured records the crossing and sends nothing."""
    conn.execute("INSERT INTO learning_journey_events (user_id, occurred_at, milestone, "
                 "risk_score) VALUES (%s, now(), 'risk_assessment', 0.95)", (A,))
    first = summary(waymark(db_url, "alerts", "--wait", "0"))
    assert (first["crossings"], first["planned"], first["delivered"]) == ("1", "0", "0")
    assert summary(waymark(db_url, "alerts", "--wait", "0"))["crossings"] == "0"
    database = Database(db_url, min_size=1, max_size=1)
    database.open(wait=True)
    try:
        with job_lock(database, "alerts") as acquired:
            assert acquired
            assert summary(waymark(db_url, "alerts"))["status"] == "skipped"
    finally:
        database.close()


def test_no_alert_goes_out_about_a_student_who_has_left(db_url: str,
                                                        conn: psycopg.Connection[Any]) -> None:
    """A and B were last active 20 days ago (risk above the alert threshold); B withdrew
    since. `waymark score` then `waymark alerts`: a crossing for A only."""
    gone = datetime.now(UTC) - timedelta(days=20)
    for student in (A, B):
        add_event(conn, "login_success", gone, user_id=student)
    add_event(conn, "course_withdrawn", gone + timedelta(days=6), user_id=B)
    assert summary(waymark(db_url, "score"))["students"] == "1"
    assert summary(waymark(db_url, "alerts", "--wait", "0"))["crossings"] == "1"
    crossed = conn.execute("SELECT student_id FROM alert_crossings").fetchall()
    assert crossed == [(A,)]
