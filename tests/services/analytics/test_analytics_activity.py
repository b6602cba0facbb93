"""Event counts, streaks, engagement and journey on small fixed data sets (hand-computed)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS, add_event

from backend.services.analytics import QUERIES
from backend.services.analytics.engagement import engagement
from backend.services.analytics.event_counts import event_counts
from backend.services.analytics.journey import journey
from backend.services.analytics.streaks import streaks
from backend.taxonomy import NON_ACTIVITY_TYPES

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00")


def test_event_counts_by_category_over_calendar_days(conn: psycopg.Connection[Any]) -> None:
    now = at("2026-03-10", 12)  # days=7: 2026-03-04 00:00 up to now
    add_event(conn, "page_view", now - timedelta(days=1), user_id=A)
    add_event(conn, "page_view", now - timedelta(days=2), user_id=B)
    add_event(conn, "quest_started", now - timedelta(days=3), user_id=A)
    add_event(conn, "my_custom_thing", now - timedelta(hours=1), user_id=A)
    add_event(conn, "badge_earned", at("2026-03-04", 0), user_id=A)  # first instant: in
    add_event(conn, "login_success", at("2026-03-03", 23, 59), user_id=A)  # day before: out
    add_event(conn, "login_success", now + timedelta(minutes=1), user_id=A)  # after now: out
    add_event(conn, "login_failed", now, user_id=A)  # at now: in

    everyone = event_counts(conn, now=now, days=7)
    assert (everyone["first_day"], everyone["last_day"]) == ("2026-03-04", "2026-03-10")
    assert everyone["counts"]["navigation"] == 2
    assert everyone["counts"]["quest"] == 1
    assert everyone["counts"]["custom"] == 1
    assert everyone["counts"]["badge"] == 1
    assert everyone["counts"]["auth"] == 1
    assert everyone["counts"]["tutor"] == 0
    assert everyone["total"] == 6

    mine = event_counts(conn, now=now, days=7, user_ids=[A])
    assert mine["counts"]["navigation"] == 1
    assert mine["total"] == 5
    both = event_counts(conn, now=now, days=7, user_ids=[A, B])
    assert both["total"] == 6 and both["user_ids"] == [str(A), str(B)]
    later = event_counts(conn, now=now + timedelta(minutes=1), days=7, user_ids=[A])
    assert later["counts"]["auth"] == 2  # the failed login at now and the one a minute later
    assert event_counts(conn, now=now, days=1)["total"] == 2  # today: the custom event, the failed login


def _active(conn: psycopg.Connection[Any], user: uuid.UUID, *days: str) -> None:
    for day in days:
        add_event(conn, "page_view", at(day, 9), user_id=user)
        add_event(conn, "page_exit", at(day, 9, 5), user_id=user)  # two events, one day


def test_streaks_run_across_a_month_boundary(conn: psycopg.Connection[Any]) -> None:
    _active(conn, A, "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05",
            "2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02")
    assert streaks(conn, A, now=at("2026-02-02", 23), history_days=HISTORY_DAYS) == {
        "current_streak": 4, "longest_streak": 5, "active_days_total": 9}
    # Not yet active today: yesterday keeps the streak alive.
    assert streaks(conn, A, now=at("2026-02-03", 8),
                   history_days=HISTORY_DAYS)["current_streak"] == 4
    # Two days later it is broken.
    assert streaks(conn, A, now=at("2026-02-04", 0, 1),
                   history_days=HISTORY_DAYS)["current_streak"] == 0
    # Looking from the past ignores later events.
    assert streaks(conn, A, now=at("2026-01-31", 10), history_days=HISTORY_DAYS) == {
        "current_streak": 2, "longest_streak": 5, "active_days_total": 7}


def test_streak_across_a_year_boundary_and_leap_day(conn: psycopg.Connection[Any]) -> None:
    _active(conn, A, "2027-12-31", "2028-01-01", "2028-02-28", "2028-02-29", "2028-03-01")
    assert streaks(conn, A, now=at("2028-03-01", 18), history_days=HISTORY_DAYS) == {
        "current_streak": 3, "longest_streak": 3, "active_days_total": 5}
    assert streaks(conn, A, now=at("2028-01-01", 18),
                   history_days=HISTORY_DAYS)["current_streak"] == 2


def test_streak_of_someone_without_events_is_zero(conn: psycopg.Connection[Any]) -> None:
    assert streaks(conn, B, now=at("2026-02-02"), history_days=HISTORY_DAYS) == {
        "current_streak": 0, "longest_streak": 0, "active_days_total": 0}


def test_engagement_numbers(conn: psycopg.Connection[Any]) -> None:
    now = at("2026-03-15", 20)
    # Session 1 (03-14): login 10:00, page view 10:05, quest q1 started 10:06,
    # completed 10:20 — 20 minutes.
    add_event(conn, "login_success", at("2026-03-14", 10), user_id=A)
    add_event(conn, "page_view", at("2026-03-14", 10, 5), user_id=A)
    add_event(conn, "quest_started", at("2026-03-14", 10, 6), user_id=A, data={"quest_id": "q1"})
    add_event(conn, "quest_completed", at("2026-03-14", 10, 20), user_id=A,
              data={"quest_id": "q1", "pillar": "stem", "xp": 50})
    # Session 2 (03-15): login 18:00, quest q2 started 18:02, page exit 18:04 lasting 60 s:
    # ends 18:05 — 5 minutes.
    add_event(conn, "login_success", at("2026-03-15", 18), user_id=A)
    add_event(conn, "quest_started", at("2026-03-15", 18, 2), user_id=A, data={"quest_id": "q2"})
    add_event(conn, "page_exit", at("2026-03-15", 18, 4), user_id=A, duration_ms=60_000)
    # Before the 7-day window: counts for streaks and last-active only.
    add_event(conn, "login_success", at("2026-03-01", 9), user_id=A)
    add_event(conn, "page_view", at("2026-03-14", 11), user_id=B)  # someone else

    result = engagement(conn, A, now=now, days=7, history_days=HISTORY_DAYS)
    assert result["total_events"] == 7
    assert result["events_by_category"]["quest"] == 3
    assert result["events_by_category"]["auth"] == 2
    assert result["events_by_category"]["navigation"] == 2
    assert result["active_days"] == 2
    assert result["sessions"] == 2
    assert result["avg_session_minutes"] == 12.5  # (20 + 5) / 2
    assert result["logins"] == 2
    assert result["logins_per_week"] == 2.0
    assert result["quest_starts"] == 2
    assert result["quest_completions"] == 1
    assert result["quests_started"] == 2
    assert result["quests_completed"] == 1
    assert result["quest_completion_rate"] == 0.5
    assert result["current_streak"] == 2
    assert result["longest_streak"] == 2
    assert result["last_active"] == at("2026-03-15", 18, 4).isoformat()
    risk = result["risk"]
    assert risk is not None and risk["user_id"] == str(A)
    by_name = {f["name"]: f for f in risk["factors"]}
    assert by_name["low_quest_completion"]["value"] == 0.5
    # The score over its own window (30 days by default), not the 7 days asked: the number
    # the at-risk list, the nightly score and its alerts give. So 03-01's lone login is a
    # third session (of 0 minutes) here, though the 7-day figures above leave it out.
    assert by_name["short_sessions"]["detail"]["sessions"] == 3
    assert by_name["short_sessions"]["detail"]["avg_session_minutes"] == round(25 / 3, 2)
    assert by_name["low_quest_completion"]["detail"]["window_days"] == 30
    assert risk["score"] == round(sum(f["contribution"] for f in risk["factors"]), 4)


def test_work_assigned_to_a_quiet_student_is_no_activity_of_theirs(
        conn: psycopg.Connection[Any]) -> None:
    """The app records a `quest_assigned` *for* the student; it must not make a student gone
    for three weeks look active on the assignment's day in any answer (queries.sql,
    "is_activity")."""
    now = at("2026-03-22", 20)
    add_event(conn, "login_success", at("2026-03-01", 10), user_id=A)
    add_event(conn, "page_view", at("2026-03-01", 10, 5), user_id=A)
    for day in ("2026-03-15", "2026-03-22"):
        add_event(conn, "quest_assigned", at(day, 8), user_id=A,
                  data={"quest_id": f"q-{day}", "due_at": f"{day}T23:59:00Z"})

    result = engagement(conn, A, now=now, days=30, history_days=HISTORY_DAYS)
    assert result["last_active"] == at("2026-03-01", 10, 5).isoformat()
    assert (result["active_days"], result["sessions"]) == (1, 1)
    assert (result["current_streak"], result["longest_streak"]) == (0, 1)
    assert journey(conn, A, now=now, history_days=HISTORY_DAYS)["sessions"] == 1
    assert streaks(conn, A, now=now, history_days=HISTORY_DAYS)["active_days_total"] == 1
    daily = conn.execute(QUERIES["class_daily"], {
        "students": [A], "since": now - timedelta(days=30), "now": now,
        "passive": list(NON_ACTIVITY_TYPES)}).fetchall()
    assert [(row[0].isoformat(), row[1]) for row in daily] == [("2026-03-01", 1)]


def test_engagement_of_a_user_without_events(conn: psycopg.Connection[Any]) -> None:
    result = engagement(conn, A, now=at("2026-03-15"), days=30, history_days=HISTORY_DAYS)
    assert result["total_events"] == 0
    assert result["sessions"] == 0
    assert result["avg_session_minutes"] is None
    assert result["quest_completion_rate"] is None
    assert result["last_active"] is None
    assert result["risk"] is None  # not a student: nothing to score


def test_engagement_lists_stored_risk_history(conn: psycopg.Connection[Any]) -> None:
    add_event(conn, "page_view", at("2026-03-10"), user_id=A)
    for day, score, level in (("2026-03-01", 0.2, "high"), ("2026-03-12", 0.65, "low"),
                              ("2026-03-16", 0.9, "at_risk")):
        conn.execute(
            "INSERT INTO learning_journey_events (user_id, occurred_at, milestone, risk_score,"
            " engagement_level) VALUES (%s, %s, 'risk_assessment', %s, %s)",
            (A, at(day), score, level))
    result = engagement(conn, A, now=at("2026-03-15"), days=7, history_days=HISTORY_DAYS)
    assert result["risk_history"] == [
        {"at": at("2026-03-12").isoformat(), "score": 0.65, "risk_level": "high",
         "engagement_level": "low"}]


def test_journey(conn: psycopg.Connection[Any]) -> None:
    now = at("2026-04-02", 12)
    add_event(conn, "quest_viewed", at("2026-03-01", 9), user_id=A, data={"quest_id": "q0"})
    add_event(conn, "quest_started", at("2026-03-02", 9), user_id=A, data={"quest_id": "q1"})
    for day, quest, pillar, xp in (("2026-03-02", "q1", "stem", 50), ("2026-03-31", "q2", "arts", 30),
                                   ("2026-04-01", "q3", "arts", 30),
                                   ("2026-04-01", "q1", "stem", 5)):  # q1 again: not a new quest
        add_event(conn, "quest_completed", at(day, 10), user_id=A,
                  data={"quest_id": quest, "pillar": pillar, "xp": xp})
    add_event(conn, "badge_earned", at("2026-03-31", 11), user_id=A, data={"badge_id": "b1"})
    add_event(conn, "badge_earned", at("2026-04-01", 11), user_id=A, data={"badge_id": "b2"})
    add_event(conn, "badge_earned", at("2026-04-01", 11, 1), user_id=A, data={"badge_id": "b2"})
    # A session of 30 minutes: page view at 11:00, page exit at 11:20 lasting 10 minutes.
    add_event(conn, "page_view", at("2026-04-02", 11), user_id=A)
    add_event(conn, "page_exit", at("2026-04-02", 11, 20), user_id=A, duration_ms=600_000)
    add_event(conn, "quest_completed", at("2026-04-03", 10), user_id=A,  # after now
              data={"quest_id": "q9", "pillar": "wellbeing", "xp": 500})

    result = journey(conn, A, now=now, history_days=HISTORY_DAYS)
    assert result["first_quest_date"] == "2026-03-02"  # a view is not a quest taken up
    assert result["total_quests_completed"] == 3
    assert result["badges_earned"] == 2
    assert result["current_streak"] == 3  # 03-31, 04-01, 04-02 across the month boundary
    assert result["favorite_pillar"] == "arts"  # arts 60 XP beats stem 55 XP
    assert result["xp_by_pillar"] == {"arts": 60, "stem": 55}
    # Sessions (30-minute gaps): 03-01 09:00 (0 s); 03-02 09:00–10:00 are 60 min apart, so
    # two sessions of 0 s; 03-31 10:00/11:00 two of 0 s; 04-01 10:00, 11:00–11:01 (60 s);
    # 04-02 11:00–11:30 (1800 s). Total 1860 s.
    assert result["time_on_platform_hours"] == pytest.approx(round(1860 / 3600, 2))


def test_favourite_pillar_tie_is_alphabetical_and_none_without_completions(
        conn: psycopg.Connection[Any]) -> None:
    now = at("2026-04-02", 12)
    add_event(conn, "quest_completed", at("2026-04-01"), user_id=A,
              data={"quest_id": "q1", "pillar": "stem", "xp": 40})
    add_event(conn, "quest_completed", at("2026-04-01", 13), user_id=A,
              data={"quest_id": "q2", "pillar": "arts", "xp": 40})
    assert journey(conn, A, now=now, history_days=HISTORY_DAYS)["favorite_pillar"] == "arts"
    empty = journey(conn, B, now=now, history_days=HISTORY_DAYS)
    assert empty["favorite_pillar"] is None
    assert empty["first_quest_date"] is None
    assert empty["total_quests_completed"] == 0
    assert empty["time_on_platform_hours"] == 0
