"""Risk score: factors at their edges and levels at their thresholds, hand-computed."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS
from freezegun import freeze_time

from backend import create_app
from backend.config import ConfigError, Settings
from backend.db import Database
from backend.services.analytics import milestones, risk
from backend.services.analytics.engagement import engagement
from backend.services.analytics.risk import DEFAULT_PARAMS, RiskParams, RiskParamsError, level_for
from backend.taxonomy import category_of

NOW = datetime(2026, 3, 15, 9, 10, tzinfo=UTC)


def add_event(conn: psycopg.Connection[Any], user_id: uuid.UUID, at: datetime, event_type: str,
              *, duration_ms: int | None = None, **data: Any) -> None:
    conn.execute(
        "INSERT INTO user_activity_events (user_id, occurred_at, event_type, event_category,"
        " duration_ms, event_data) VALUES (%s, %s, %s, %s, %s, %s)",
        (user_id, at, event_type, category_of(event_type), duration_ms, json.dumps(data)))


def factors_of(assessment: risk.RiskAssessment) -> dict[str, float]:
    return {f.name: f.value for f in assessment.factors}


def only(conn: psycopg.Connection[Any], user_id: uuid.UUID, now: datetime = NOW,
         params: RiskParams = DEFAULT_PARAMS) -> risk.RiskAssessment:
    found = risk.score_students(conn, now=now, params=params, user_ids=[user_id],
                                history_days=HISTORY_DAYS)
    assert len(found) == 1
    return found[0]


def test_perfectly_regular_student_has_no_risk(conn: psycopg.Connection[Any]) -> None:
    # Every day of the 30-day window (across the February→March boundary): a login at
    # 09:00, a page view at 09:10 lasting 10 minutes (a 20-minute session), one quest.
    student = uuid.uuid4()
    for back in range(30):
        day = NOW.replace(hour=9, minute=0) - timedelta(days=back)
        add_event(conn, student, day, "login_success")
        add_event(conn, student, day + timedelta(minutes=10), "page_view", duration_ms=600_000)
    add_event(conn, student, NOW - timedelta(days=20), "quest_started", quest_id="q1")
    add_event(conn, student, NOW - timedelta(days=19), "quest_completed", quest_id="q1")

    result = only(conn, student)

    assert factors_of(result) == {"inactivity": 0.0, "low_login_frequency": 0.0,
                                  "low_quest_completion": 0.0, "short_sessions": 0.0,
                                  "broken_streak": 0.0}
    assert result.score == 0.0
    assert result.level == "high"
    details = {f.name: f.detail for f in result.factors}
    assert details["broken_streak"] == {"current_streak_days": 30, "longest_streak_days": 30}
    assert details["short_sessions"]["avg_session_minutes"] == 20.0
    assert details["low_login_frequency"]["active_days"] == 30


def test_student_inactive_for_30_plus_days_is_fully_at_risk(
        conn: psycopg.Connection[Any]) -> None:
    student = uuid.uuid4()
    add_event(conn, student, NOW - timedelta(days=40), "login_success")
    add_event(conn, student, NOW - timedelta(days=40), "quest_completed", quest_id="q1")

    result = only(conn, student)

    assert factors_of(result) == {"inactivity": 1.0, "low_login_frequency": 1.0,
                                  "low_quest_completion": 1.0, "short_sessions": 1.0,
                                  "broken_streak": 1.0}
    assert result.score == 1.0
    assert result.level == "at_risk"
    inactivity = result.factors[0]
    assert inactivity.detail["days_since_last_activity"] == 40.0
    assert inactivity.contribution == pytest.approx(0.40)


def test_brand_new_student(conn: psycopg.Connection[Any]) -> None:
    # One login an hour ago. inactivity = (1/24)/14; one active day in the minimum
    # observed week → 1/week of 3 expected → 2/3; no quest → 1; a 0-minute session → 1;
    # streak current 1 of longest 1 → 0.
    student = uuid.uuid4()
    add_event(conn, student, NOW - timedelta(hours=1), "login_success")

    result = only(conn, student)

    values = factors_of(result)
    assert values["inactivity"] == pytest.approx(1 / 24 / 14)
    assert values["low_login_frequency"] == pytest.approx(2 / 3)
    assert values["low_quest_completion"] == 1.0
    assert values["short_sessions"] == 1.0
    assert values["broken_streak"] == 0.0
    expected = 0.40 * (1 / 24 / 14) + 0.25 * (2 / 3) + 0.20 + 0.10
    assert result.score == round(expected, 6) == 0.467857
    assert result.level == "medium"


def test_sessions_split_on_gaps_and_partial_factors(conn: psycopg.Connection[Any]) -> None:
    # Two days, 2026-03-13 and 2026-03-14 (a 2-day streak ended yesterday: still alive).
    # Day 1: 10:00 and 10:20 (one 20-min session), 11:30 (gap 70 min: a new 0-min session).
    # Day 2: 10:00 login, 10:05 page view of 5 minutes → a 10-minute session.
    # Sessions 20, 0, 10 → mean 10 min → short = 1 − 10/15 = 1/3.
    # Quests: q1 started+completed, q2 started → 1 − 1/2 = 0.5.
    # Last event 2026-03-14 10:05, now 03-15 09:10 → 23h05m = 0.9618 days → /14.
    # First event 03-13 10:00 → observed 7 days (minimum) → 2 days/week → 1 − 2/3 = 1/3.
    student = uuid.uuid4()
    d1 = datetime(2026, 3, 13, 10, 0, tzinfo=UTC)
    d2 = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
    add_event(conn, student, d1, "quest_started", quest_id="q1")
    add_event(conn, student, d1 + timedelta(minutes=20), "quest_completed", quest_id="q1")
    add_event(conn, student, d1 + timedelta(minutes=90), "quest_started", quest_id="q2")
    add_event(conn, student, d2, "login_success")
    add_event(conn, student, d2 + timedelta(minutes=5), "page_view", duration_ms=300_000)

    result = only(conn, student)

    days_idle = (23 * 60 + 5) / 1440
    values = factors_of(result)
    assert values == pytest.approx({"inactivity": days_idle / 14, "low_login_frequency": 1 / 3,
                                    "low_quest_completion": 0.5, "short_sessions": 1 / 3,
                                    "broken_streak": 0.0})
    expected = 0.40 * days_idle / 14 + 0.25 / 3 + 0.20 * 0.5 + 0.10 / 3
    assert result.score == round(expected, 6)
    assert {f.name: f.detail for f in result.factors}["short_sessions"]["sessions"] == 3


def test_broken_streak_and_inactivity_part_way(conn: psycopg.Connection[Any]) -> None:
    # Active 4 days in a row ending 7 days ago: streak broken (current 0 of 4) → 1;
    # inactivity 7/14 = 0.5.
    student = uuid.uuid4()
    for back in range(7, 11):
        add_event(conn, student, NOW - timedelta(days=back), "page_view")

    values = factors_of(only(conn, student))

    assert values["broken_streak"] == 1.0
    assert values["inactivity"] == pytest.approx(0.5)


def test_parents_are_not_students_and_future_events_are_ignored(
        conn: psycopg.Connection[Any]) -> None:
    student, parent, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    add_event(conn, student, NOW - timedelta(days=1), "login_success")
    add_event(conn, parent, NOW - timedelta(days=1), "parent_dashboard_opened")
    add_event(conn, later, NOW + timedelta(days=1), "login_success")
    add_event(conn, student, NOW + timedelta(hours=1), "login_success")
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (parent, student))

    found = risk.score_students(conn, now=NOW, history_days=HISTORY_DAYS)

    assert [a.user_id for a in found] == [student]
    assert found[0].factors[0].detail["days_since_last_activity"] == 1.0


def test_all_students_in_one_call_highest_first(conn: psycopg.Connection[Any]) -> None:
    idle, fresh = uuid.uuid4(), uuid.uuid4()
    add_event(conn, idle, NOW - timedelta(days=40), "page_view")
    add_event(conn, fresh, NOW - timedelta(hours=1), "login_success")

    found = risk.score_students(conn, now=NOW, history_days=HISTORY_DAYS)

    assert [a.user_id for a in found] == [idle, fresh]
    assert [a.level for a in found] == ["at_risk", "medium"]
    assert risk.score_students(conn, now=NOW, user_ids=[], history_days=HISTORY_DAYS) == []


def test_row_level_security_decides_who_is_scored(
        db_url: str, conn: psycopg.Connection[Any], auth: Any) -> None:
    # Three students (A with a parent P) and the parent's own event; the same call as
    # each identity sees only what RLS lets it see, with due dates parsed as any role.
    a, b, c, parent, admin = (uuid.uuid4() for _ in range(5))
    for student in (a, b, c):
        add_event(conn, student, NOW - timedelta(days=2), "login_success")
        add_event(conn, student, NOW - timedelta(days=3), "quest_assigned", quest_id="q",
                  due_at=(NOW - timedelta(days=1)).isoformat())
    add_event(conn, parent, NOW - timedelta(days=1), "parent_dashboard_opened")
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (parent, a))
    db = Database(db_url, max_size=1)
    db.open(wait=True)
    try:
        def scored(user: uuid.UUID, role: str) -> set[uuid.UUID]:
            with db.as_user(auth.claims(user, role)) as user_conn:
                return {x.user_id for x in risk.score_students(user_conn, now=NOW,
                                                               params=DEADLINES,
                                                               history_days=HISTORY_DAYS)}

        assert scored(a, "student") == {a}
        assert scored(b, "student") == {b}
        assert scored(parent, "parent") == {a}
        assert scored(admin, "admin") == {a, b, c}
    finally:
        db.close()


def test_now_must_carry_a_timezone(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="timezone"):
        risk.score_students(conn, now=datetime(2026, 3, 15), history_days=HISTORY_DAYS)


@freeze_time("2026-03-15 09:10:00")
def test_as_dict_is_json_ready(conn: psycopg.Connection[Any]) -> None:
    student = uuid.uuid4()
    add_event(conn, student, NOW - timedelta(days=40), "page_view")

    data = only(conn, student, now=datetime.now(UTC)).as_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["user_id"] == str(student)
    assert data["computed_at"] == "2026-03-15T09:10:00+00:00"
    assert [f["contribution"] for f in data["factors"]] == [0.4, 0.25, 0.2, 0.1, 0.05]


@pytest.mark.parametrize(("score", "level"), [
    (0.0, "high"), (0.2999, "high"), (0.3, "medium"), (0.6, "medium"), (0.6001, "low"),
    (0.8, "low"), (0.8001, "at_risk"), (1.0, "at_risk"),
])
def test_levels_at_the_thresholds(score: float, level: str) -> None:
    assert level_for(score) == level


def _row(now: datetime, *, idle_days: float, active_days: int = 3, started: int = 1,
         completed: int = 1, sessions: int = 1, minutes: float = 15.0, longest: int = 1,
         current: int = 1) -> dict[str, Any]:
    return {"user_id": uuid.uuid4(), "first_at": now - timedelta(days=7),
            "last_at": now - timedelta(days=idle_days), "active_days": active_days,
            "login_events": 0, "quests_started": started, "quests_completed": completed,
            "sessions": sessions, "avg_session_minutes": minutes,
            "longest_streak": longest, "current_streak": current,
            "quests_due": 0, "quests_missed": 0, "quests_late": 0, "scored_quests": 0,
            "mean_xp": None, "recent_active_days": 0}


@pytest.mark.parametrize(("row_args", "score", "level"), [
    # 0.40 · 10.5/14 = 0.3 exactly → medium (not high).
    ({"idle_days": 10.5}, 0.3, "medium"),
    # 0.40 + 0.20 is 0.6000000000000001 in floating point; rounded, it is 0.6 → medium.
    ({"idle_days": 14, "completed": 0}, 0.6, "medium"),
    # 0.40 + 0.25 + 0.10 + 0.05 = 0.8 → low (not at_risk).
    ({"idle_days": 14, "active_days": 0, "sessions": 0, "longest": 0, "current": 0},
     0.8, "low"),
    # 0.40 + 0.25 + 0.20·0.5 + 0.10 = 0.85 → at_risk.
    ({"idle_days": 20, "active_days": 0, "started": 2, "sessions": 0}, 0.85, "at_risk"),
])
def test_assessed_scores_at_the_thresholds(row_args: dict[str, Any], score: float,
                                           level: str) -> None:
    result = risk.assess(_row(NOW, **row_args), now=NOW)
    assert result.score == score
    assert result.level == level


DEADLINES = RiskParams(inactivity_weight=0.35, deadline_weight=0.05, deadline_days=14)


def test_missed_deadlines_count_quests_due_in_the_window(conn: psycopg.Connection[Any]) -> None:
    # Assigned 20 days ago: q1 due 10 days ago (completed), q2 due 5 days ago (missed),
    # q3 due 20 days ago (outside the 14-day deadline window), q4 due tomorrow (not yet).
    # A malformed due date is ignored rather than failing the query. → 1 missed of 2 due.
    student = uuid.uuid4()
    assigned = NOW - timedelta(days=20)
    for quest, due in (("q1", NOW - timedelta(days=10)), ("q2", NOW - timedelta(days=5)),
                       ("q3", NOW - timedelta(days=20)), ("q4", NOW + timedelta(days=1))):
        add_event(conn, student, assigned, "quest_assigned", quest_id=quest,
                  due_at=due.isoformat())
    add_event(conn, student, assigned, "quest_assigned", quest_id="q5", due_at="2026-13-45")
    add_event(conn, student, NOW - timedelta(days=12), "quest_completed", quest_id="q1")

    result = only(conn, student, params=DEADLINES)

    deadline = {f.name: f for f in result.factors}["missed_deadlines"]
    assert deadline.value == 0.5
    assert deadline.detail == {"quests_due": 2, "quests_missed": 1, "window_days": 14.0}
    assert deadline.contribution == pytest.approx(0.025)
    # With the seed weights the factor has weight 0 and is not reported.
    assert "missed_deadlines" not in factors_of(only(conn, student))


SUBMISSIONS = RiskParams(inactivity_weight=0.25, deadline_weight=0.05, late_weight=0.05,
                         score_weight=0.05, deadline_days=14)


def test_late_completions_and_low_quest_scores(conn: psycopg.Connection[Any]) -> None:
    # Assigned 20 days ago; deadline window = the last 14 days.
    # q1 due 10 days ago, completed 12 days ago with xp 90: on time.
    # q2 due 5 days ago, completed 3 days ago with xp 40: late.
    # q3 due 4 days ago, never completed: missed (not late).
    # q4 due 20 days ago, completed 19 days ago with xp 0: outside the window, both ways.
    # q5 (no due date) completed 1 day ago with xp "high": not a number, not scored.
    # q6 completed 2 days ago with xp 50 and again 1 day ago with xp 70: best xp, 70.
    # q7 completed 1 day ago without xp: not scored.
    # → late 1 of 3 due; mean xp (90 + 40 + 70) / 3 over 3 scored quests.
    student = uuid.uuid4()
    assigned = NOW - timedelta(days=20)
    for quest, due in (("q1", 10), ("q2", 5), ("q3", 4), ("q4", 20)):
        add_event(conn, student, assigned, "quest_assigned", quest_id=quest,
                  due_at=(NOW - timedelta(days=due)).isoformat())
    for quest, back, xp in (("q1", 12, 90), ("q2", 3, 40), ("q4", 19, 0), ("q5", 1, "high"),
                            ("q6", 2, 50), ("q6", 1, 70)):
        add_event(conn, student, NOW - timedelta(days=back), "quest_completed", quest_id=quest,
                  xp=xp)
    add_event(conn, student, NOW - timedelta(days=1), "quest_completed", quest_id="q7")

    result = {f.name: f for f in only(conn, student, params=SUBMISSIONS).factors}

    late, scores = result["late_completions"], result["low_quest_scores"]
    assert late.value == pytest.approx(1 / 3)
    assert late.detail == {"quests_due": 3, "quests_late": 1, "window_days": 14.0}
    # Missed and late never count the same quest.
    assert result["missed_deadlines"].detail == {"quests_due": 3, "quests_missed": 1,
                                                 "window_days": 14.0}
    assert scores.value == pytest.approx(1 - (90 + 40 + 70) / 3 / 100)
    assert scores.detail == {"scored_quests": 3, "mean_xp": 66.67, "xp_target": 100.0,
                             "window_days": 14.0}
    assert late.contribution + scores.contribution == pytest.approx(
        0.05 / 3 + 0.05 * (1 - 200 / 300))
    # With the seed weights both factors have weight 0 and are not reported.
    assert not {"late_completions", "low_quest_scores"} & set(factors_of(only(conn, student)))


@pytest.mark.parametrize(("xp_json", "value"), [
    ("150", 0.0),      # above the target: no risk, not a negative one
    ("100", 0.0),      # exactly the target
    ("0", 1.0),        # nothing earned
    ("-20", 1.0),      # below zero clamps to 1
    ("1e400", 0.0),    # a JSON number too big for float8 is bounded, not an error
])
def test_low_quest_scores_at_its_edges(conn: psycopg.Connection[Any], xp_json: str,
                                       value: float) -> None:
    student = uuid.uuid4()
    conn.execute(
        "INSERT INTO user_activity_events (user_id, occurred_at, event_type, event_category,"
        " event_data) VALUES (%s, %s, 'quest_completed', 'quest', %s::jsonb)",
        (student, NOW - timedelta(days=1), '{"quest_id": "q1", "xp": ' + xp_json + "}"))

    scores = {f.name: f for f in only(conn, student, params=SUBMISSIONS).factors}
    assert scores["low_quest_scores"].value == value
    assert scores["low_quest_scores"].detail["scored_quests"] == 1


def test_nothing_due_or_scored_is_no_sign_of_risk(conn: psycopg.Connection[Any]) -> None:
    # Active, but no quest due in the window and no xp: both factors 0, not 1.
    student = uuid.uuid4()
    add_event(conn, student, NOW - timedelta(hours=1), "page_view")
    add_event(conn, student, NOW - timedelta(hours=1), "quest_completed", quest_id="q1")

    result = {f.name: f for f in only(conn, student, params=SUBMISSIONS).factors}
    assert result["late_completions"].value == 0.0
    assert result["late_completions"].detail["quests_due"] == 0
    assert result["low_quest_scores"].value == 0.0
    assert result["low_quest_scores"].detail["mean_xp"] is None


TREND = RiskParams(inactivity_weight=0.35, trend_weight=0.05)


def _active_on(conn: psycopg.Connection[Any], student: uuid.UUID, days_back: range | list[int],
               ) -> None:
    for back in days_back:
        add_event(conn, student, NOW.replace(hour=9, minute=0) - timedelta(days=back),
                  "page_view")


def test_declining_activity_compares_a_student_with_their_own_earlier_weeks(
        conn: psycopg.Connection[Any]) -> None:
    # Every day from 29 to 15 days ago (15 days), then only 10 and 3 days ago. NOW is
    # 09:10, so the first event was 29 days 10 minutes ago: observed 29.00694 days, of
    # which the last 14 are "recent" and 15.00694 "earlier".
    student = uuid.uuid4()
    _active_on(conn, student, [*range(15, 30), 10, 3])

    trend = {f.name: f for f in only(conn, student, params=TREND).factors}["declining_activity"]

    earlier_span = 29 + 10 / 1440 - 14
    assert trend.value == pytest.approx(1 - (2 / 14) / (15 / earlier_span))
    assert trend.detail["recent_active_days"] == 2
    assert trend.detail["earlier_active_days"] == 15
    assert trend.detail["earlier_days"] == round(earlier_span, 2)
    assert trend.contribution == pytest.approx(0.05 * trend.value)


@pytest.mark.parametrize(("days_back", "params", "value"), [
    # Active earlier, nothing in the last 14 days: fully declined.
    ([20, 21, 22], TREND, 1.0),
    # More active recently than before: no decline (not negative).
    ([20, 5, 4, 3, 2, 1], TREND, 0.0),
    # The same rate before and after: 7 of 14 recent days, 8 of the 16 earlier days
    # (window 30, first event 29 days 10 minutes ago → earlier ≈ 15.007 days).
    ([*range(16, 30, 2), 29, *range(1, 14, 2)], TREND, 1 - (7 / 14) / (8 / (15 + 10 / 1440))),
    # A new student (first event 3 days ago): no earlier weeks to compare with.
    ([3, 2], TREND, 0.0),
    # Recent part as long as the window: nothing earlier, so 0.
    ([20, 21, 22], replace(TREND, window_days=14), 0.0),
])
def test_declining_activity_at_its_edges(conn: psycopg.Connection[Any], days_back: list[int],
                                         params: RiskParams, value: float) -> None:
    student = uuid.uuid4()
    _active_on(conn, student, days_back)

    trend = {f.name: f for f in only(conn, student, params=params).factors}["declining_activity"]
    assert trend.value == pytest.approx(value)


def test_a_student_who_never_showed_up_is_scored(conn: psycopg.Connection[Any]) -> None:
    # Only quest assignments (recorded for the student, not by them): no activity at all.
    student = uuid.uuid4()
    add_event(conn, student, NOW - timedelta(days=3), "quest_assigned", quest_id="q1",
              due_at=(NOW - timedelta(days=1)).isoformat())

    result = only(conn, student, params=DEADLINES)

    assert all(value == 1.0 for value in factors_of(result).values())
    assert result.score == 1.0
    assert result.factors[0].detail["days_since_last_activity"] is None


def test_params_from_mapping_and_validation() -> None:
    params = RiskParams.from_mapping({"WAYMARK_RISK_INACTIVITY_DAYS": "7",
                                      "WAYMARK_RISK_WINDOW_DAYS": "14",
                                      "WAYMARK_DATABASE_URL": "ignored"})
    assert params.inactivity_days == 7.0
    assert params.window_days == 14
    assert params.login_weight == 0.25
    with pytest.raises(RiskParamsError, match="add up to 1"):
        RiskParams.from_mapping({"inactivity_weight": 0.5})
    with pytest.raises(RiskParamsError, match="unknown risk parameter"):
        RiskParams.from_mapping({"WAYMARK_RISK_INACTIVTY_DAYS": "7"})
    with pytest.raises(RiskParamsError, match="must be positive"):
        RiskParams(session_target_minutes=0)
    with pytest.raises(RiskParamsError, match="must be a number"):
        RiskParams.from_mapping({"window_days": "a month"})


def test_presets_and_settings_from_the_environment() -> None:
    assert RiskParams.from_mapping({"WAYMARK_RISK_PRESET": "oulad-2013"}) == \
        risk.CALIBRATED_PARAMS
    tuned = RiskParams.from_mapping({"WAYMARK_RISK_PRESET": "oulad-2013",
                                     "WAYMARK_RISK_WINDOW_DAYS": "10"})
    assert tuned == replace(risk.CALIBRATED_PARAMS, window_days=10)
    with pytest.raises(RiskParamsError, match="unknown risk preset"):
        RiskParams.from_mapping({"WAYMARK_RISK_PRESET": "best"})
    # The environment is the fallback, app.config wins; a bad value stops start-up.
    settings = Settings.load({"WAYMARK_RISK_INACTIVITY_DAYS": 5},
                             {"WAYMARK_RISK_INACTIVITY_DAYS": "7",
                              "WAYMARK_RISK_SESSION_TARGET_MINUTES": "20"})
    params = RiskParams.from_mapping(settings.extra)
    assert (params.inactivity_days, params.session_target_minutes) == (5.0, 20.0)
    with pytest.raises(ConfigError, match="WAYMARK_RISK_INACTIVTY_DAYS"):
        risk.params_from_settings(Settings.load({}, {"WAYMARK_RISK_INACTIVTY_DAYS": "7"}))
    with pytest.raises(ConfigError, match="WAYMARK_RISK_INACTIVTY_DAYS"):  # at start-up
        create_app({"WAYMARK_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                    "WAYMARK_RISK_INACTIVTY_DAYS": 7})


# ------------------------------------------------ calibrated normalisations (issue #8)

#: The seed's weights with 0.05 moved to each submission factor, and the normalisations
#: of the calibrated preset: low quest scores 0 at xp 100 and 1 at xp 60, missing or
#: being late with half the work due is full.
SCALED = replace(DEFAULT_PARAMS, inactivity_weight=0.25, deadline_weight=0.05,
                 late_weight=0.05, score_weight=0.05, xp_floor=60.0,
                 deadline_full_share=0.5, late_full_share=0.5)


def _submissions(*, due: int = 0, missed: int = 0, late: int = 0, scored: int = 0,
                 mean_xp: float | None = None) -> dict[str, Any]:
    return {**_row(NOW, idle_days=0), "quests_due": due, "quests_missed": missed, "quests_late": late,
            "scored_quests": scored, "mean_xp": mean_xp}


def _factor(row: dict[str, Any], name: str, params: RiskParams = SCALED) -> risk.Factor:
    return {f.name: f for f in risk.assess(row, now=NOW, params=params).factors}[name]


@pytest.mark.parametrize(("mean_xp", "value"), [
    (110.0, 0.0),   # above the target
    (100.0, 0.0),   # at the target
    (80.0, 0.5),    # half-way: (100 − 80) / (100 − 60)
    (70.0, 0.75),   # (100 − 70) / 40
    (60.0, 1.0),    # at the floor
    (30.0, 1.0),    # below the floor clamps to 1
])
def test_low_quest_scores_between_floor_and_target(mean_xp: float, value: float) -> None:
    scores = _factor(_submissions(scored=2, mean_xp=mean_xp), "low_quest_scores")
    assert scores.value == pytest.approx(value)
    assert scores.detail["xp_floor"] == 60.0
    # The seed's normalisation (floor 0) of the same mean: 1 − mean / 100.
    plain = _factor(_submissions(scored=2, mean_xp=mean_xp), "low_quest_scores",
                    replace(SCALED, xp_floor=0.0))
    assert plain.value == pytest.approx(max(0.0, 1 - mean_xp / 100))
    assert "xp_floor" not in plain.detail


@pytest.mark.parametrize(("scored", "mean_xp", "missed", "switch", "value"), [
    # 2 quests at 90 and 2 missed at the floor 60: mean 75 → (100 − 75) / 40.
    (2, 90.0, 2, 1.0, 0.625),
    # Switch off: the missed quests stay out of the mean, 90 → 10 / 40.
    (2, 90.0, 2, 0.0, 0.25),
    # Nothing handed in, one quest missed: mean 60, the floor → 1 (not "nothing scored").
    (0, None, 1, 1.0, 1.0),
    # Nothing handed in and nothing missed: still nothing to judge → 0.
    (0, None, 0, 1.0, 0.0),
])
def test_missed_quests_count_at_the_floor(scored: int, mean_xp: float | None, missed: int,
                                          switch: float, value: float) -> None:
    row = _submissions(due=max(missed, 1), missed=missed, scored=scored, mean_xp=mean_xp)
    scores = _factor(row, "low_quest_scores", replace(SCALED, missed_at_floor=switch))
    assert scores.value == pytest.approx(value)
    assert scores.detail["scored_quests"] == scored
    assert scores.detail.get("missed_at_floor") == (missed if switch else None)


@pytest.mark.parametrize(("due", "count", "value"), [
    (4, 0, 0.0),
    (4, 1, 0.5),     # a quarter of the work, full at a half → 0.5
    (4, 2, 1.0),     # half → full
    (4, 3, 1.0),     # more than half clamps to 1
    (3, 1, 2 / 3),   # (1/3) / 0.5
    (0, 0, 0.0),     # nothing due
])
def test_missed_and_late_shares_full_at_a_calibrated_share(due: int, count: int,
                                                           value: float) -> None:
    missed = _factor(_submissions(due=due, missed=count), "missed_deadlines")
    late = _factor(_submissions(due=due, late=count), "late_completions")
    assert missed.value == pytest.approx(value)
    assert late.value == pytest.approx(value)
    assert missed.detail["full_at_share"] == late.detail["full_at_share"] == 0.5
    # With the default share of 1.0 the value is the plain share and the detail as before.
    plain = _factor(_submissions(due=due, missed=count), "missed_deadlines",
                    replace(SCALED, deadline_full_share=1.0))
    assert plain.value == pytest.approx(count / due if due else 0.0)
    assert plain.detail == {"quests_due": due, "quests_missed": count, "window_days": 30.0}


def test_the_calibrated_preset_puts_a_student_who_stopped_at_risk() -> None:
    # 56 days observed, 10 active days, none in the last 21, streak broken; 3 quests due,
    # none handed in. Preset: missed 3/3 → 1 (0.20), late 0, low scores: the 3 missed
    # quests at the floor 60 → 1 (0.50), declining activity 1 (0.10), broken streak 1
    # (0.05) → 0.85, at_risk. Under the previous scale (plain shares, floor 0, missed left
    # out of the mean) the same student scored 0.25 + 0.10 + 0.05 = 0.40.
    gone = {**_submissions(due=3, missed=3), "first_at": NOW - timedelta(days=56),
            "active_days": 10, "recent_active_days": 0, "longest_streak": 5,
            "current_streak": 0}
    result = risk.assess(gone, now=NOW, params=risk.CALIBRATED_PARAMS)
    assert result.score == pytest.approx(0.85)
    assert result.level == "at_risk"
    # Everything handed in on time with a mean xp of 85, active as before:
    # low scores (100 − 85) / 40 = 0.375 → 0.1875, the rest 0 → high engagement.
    steady = {**_submissions(due=3, scored=3, mean_xp=85.0),
              "first_at": NOW - timedelta(days=56), "active_days": 16,
              "recent_active_days": 6, "longest_streak": 3, "current_streak": 3}
    result = risk.assess(steady, now=NOW, params=risk.CALIBRATED_PARAMS)
    assert result.score == pytest.approx(0.1875)
    assert result.level == "high"


def test_normalisation_parameters_are_validated() -> None:
    with pytest.raises(RiskParamsError, match="xp_floor .* must be below xp_target"):
        RiskParams(xp_floor=100.0)
    with pytest.raises(RiskParamsError, match="xp_floor must not be negative"):
        RiskParams(xp_floor=-1.0)
    with pytest.raises(RiskParamsError, match="deadline_full_share is a share"):
        RiskParams(deadline_full_share=1.5)
    with pytest.raises(RiskParamsError, match="late_full_share must be positive"):
        RiskParams(late_full_share=0.0)
    with pytest.raises(RiskParamsError, match="missed_at_floor is a switch"):
        RiskParams.from_mapping({"WAYMARK_RISK_MISSED_AT_FLOOR": "0.5"})
    params = RiskParams.from_mapping({"WAYMARK_RISK_PRESET": "oulad-2013",
                                      "WAYMARK_RISK_XP_FLOOR": "50",
                                      "WAYMARK_RISK_MISSED_AT_FLOOR": "0"})
    assert (params.xp_floor, params.missed_at_floor) == (50.0, 0.0)


def test_a_student_who_has_left_is_not_scored_until_active_again(
        conn: psycopg.Connection[Any]) -> None:
    """A withdrawal or completion after a student's last activity takes them out of every
    score (and so of the at-risk list and its alerts); activity after it brings them back."""
    withdrew, returned, completed, stayed = (uuid.uuid4() for _ in range(4))
    for student in (withdrew, returned, completed, stayed):
        add_event(conn, student, NOW - timedelta(days=10), "page_view")
    add_event(conn, withdrew, NOW - timedelta(days=8), "course_withdrawn")
    add_event(conn, returned, NOW - timedelta(days=8), "course_withdrawn")
    add_event(conn, returned, NOW - timedelta(days=3), "login_success")  # re-enrolled
    add_event(conn, completed, NOW - timedelta(days=8), "course_completed")

    def scored(at: datetime) -> dict[uuid.UUID, float]:
        return {a.user_id: a.score for a in risk.score_students(conn, now=at,
                                                               history_days=HISTORY_DAYS)}

    assert set(scored(NOW)) == {returned, stayed}
    assert set(milestones.student_ids(conn, now=NOW, history_days=HISTORY_DAYS)) == {
        returned, stayed}
    assert set(scored(NOW - timedelta(days=9))) == {withdrew, returned, completed, stayed}
    assert risk.score_students(conn, now=NOW, user_ids=[withdrew],
                               history_days=HISTORY_DAYS) == []
    # a leaving event is a record about the student, no activity of theirs
    page = engagement(conn, withdrew, now=NOW, days=30, history_days=HISTORY_DAYS)
    assert page["last_active"] == (NOW - timedelta(days=10)).isoformat()
    assert page["active_days"] == 1
    # the answer says why there is no risk: how and when they left; nothing once back
    assert (page["risk"], page["left"]) == (
        None, {"event": "course_withdrawn", "at": (NOW - timedelta(days=8)).isoformat()})
    assert engagement(conn, completed, now=NOW, days=30,
                      history_days=HISTORY_DAYS)["left"]["event"] == "course_completed"
    back = engagement(conn, returned, now=NOW, days=30, history_days=HISTORY_DAYS)
    assert back["left"] is None and back["risk"] is not None
