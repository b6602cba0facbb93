"""Cohort-relative risk factors: their normalisation at the edges, hand-computed."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from analytics_support import HISTORY_DAYS, add_event

from backend.scripts import analytics_jobs
from backend.services.analytics import risk
from backend.services.analytics.risk import Cohort, RiskParams, cohort_of
from backend.services.analytics.risk.factors import (
    cohort_activity_factor,
    cohort_gap_factor,
    cohort_late_factor,
    cohort_missed_factor,
    cohort_score_factor,
)

NOW = datetime(2026, 3, 15, 9, 10, tzinfo=UTC)
COHORT_ONLY = RiskParams(inactivity_weight=0.0, login_weight=0.0, quest_weight=0.0,
                         session_weight=0.0, streak_weight=0.0,
                         cohort_activity_weight=0.5, cohort_score_weight=0.5)


def row(active_days: int, mean_xp: float | None = None, *, due: int = 0, missed: int = 0,
        late: int = 0) -> dict[str, Any]:
    return {"user_id": uuid.uuid4(), "active_days": active_days,
            "scored_quests": 0 if mean_xp is None else 2, "mean_xp": mean_xp,
            "quests_due": due, "quests_missed": missed, "quests_late": late}


def test_cohort_medians_leave_out_students_without_scores() -> None:
    cohort = cohort_of([row(2, 50.0), row(4), row(10, 70.0), row(6, 90.0)])
    assert cohort == Cohort(median_active_days=5.0, median_xp=70.0)
    assert cohort_of([]) == Cohort(None, None)


def test_cohort_deadline_shares_are_medians_over_students_who_had_work_due() -> None:
    cohort = cohort_of([row(2, due=4, missed=1, late=2), row(3, due=2, missed=2),
                        row(4, due=5), row(5)])  # the last had nothing due: left out
    assert cohort.median_missed_share == pytest.approx(0.25)  # of 0.25, 1.0, 0.0
    assert cohort.median_late_share == pytest.approx(0.0)     # of 0.5, 0.0, 0.0
    assert cohort_of([row(1), row(2)]).median_missed_share is None


DEADLINES_ONLY = RiskParams(inactivity_weight=0.0, login_weight=0.0, quest_weight=0.0,
                            session_weight=0.0, streak_weight=0.0,
                            cohort_missed_weight=0.5, cohort_late_weight=0.5)


@pytest.mark.parametrize(("due", "count", "median", "expected"), [
    (4, 4, 0.0, 1.0),     # all of it, in a class that misses nothing: (1 - 0) / 0.5, clamped
    (4, 1, 0.0, 0.5),     # a quarter above the median: (0.25 - 0) / 0.5
    (4, 3, 0.5, 0.5),     # (0.75 - 0.5) / 0.5
    (4, 2, 0.5, 0.0),     # at the class's median: not a sign here, whatever the share
    (4, 0, 0.5, 0.0),     # below it: clamped, never negative
    (4, 4, 1.0, 0.0),     # everyone misses it all: nobody is worse than the class
    (0, 0, 0.25, 0.0),    # nothing due: nothing to judge
    (4, 4, None, 0.0),    # no one in the cohort had work due
])
def test_missed_and_late_more_than_cohort_edges(due: int, count: int, median: float | None,
                                                expected: float) -> None:
    missed = cohort_missed_factor(row(3, due=due, missed=count),
                                  Cohort(median_missed_share=median), DEADLINES_ONLY)
    late = cohort_late_factor(row(3, due=due, late=count),
                              Cohort(median_late_share=median), DEADLINES_ONLY)
    assert missed.value == pytest.approx(expected)
    assert late.value == pytest.approx(expected)
    assert missed.detail["full_at_share_above"] == late.detail["full_at_share_above"] == 0.5
    assert missed.detail["cohort_median_share"] == median


def test_the_share_gap_that_counts_in_full_is_a_parameter() -> None:
    wide = replace(DEADLINES_ONLY, cohort_share_gap=1.0)
    assert cohort_missed_factor(row(3, due=4, missed=4), Cohort(median_missed_share=0.0),
                                wide).value == pytest.approx(1.0)
    assert cohort_missed_factor(row(3, due=4, missed=1), Cohort(median_missed_share=0.0),
                                wide).value == pytest.approx(0.25)
    with pytest.raises(risk.RiskParamsError, match="cohort_share_gap"):
        replace(DEADLINES_ONLY, cohort_share_gap=1.5)
    assert DEADLINES_ONLY.uses_cohorts


@pytest.mark.parametrize(("active", "median", "expected"), [
    (0, 8.0, 1.0),      # no active day against an active cohort: full sign
    (2, 8.0, 0.75),     # 1 - 2/8
    (8, 8.0, 0.0),      # at the median
    (20, 8.0, 0.0),     # above it: clamped, never negative
    (0, 0.0, 0.0),      # an idle cohort: nobody is behind
    (3, None, 0.0),     # no cohort at all
])
def test_below_cohort_activity_edges(active: int, median: float | None, expected: float) -> None:
    factor = cohort_activity_factor(row(active), Cohort(median_active_days=median), COHORT_ONLY)
    assert factor.value == pytest.approx(expected)
    assert factor.detail["cohort_median_active_days"] == median


@pytest.mark.parametrize(("mean", "median", "expected"), [
    (0.0, 80.0, 1.0),     # scored nothing on work handed in
    (60.0, 80.0, 0.25),   # (80 - 60) / 80
    (80.0, 80.0, 0.0),
    (100.0, 80.0, 0.0),   # clamped
    (None, 80.0, 0.0),    # nothing of their own to judge
    (50.0, None, 0.0),    # no one in the cohort was scored
    (50.0, 0.0, 0.0),     # a cohort median of 0 cannot be fallen below
])
def test_below_cohort_scores_edges(mean: float | None, median: float | None,
                                   expected: float) -> None:
    factor = cohort_score_factor(row(5, mean), Cohort(median_xp=median), COHORT_ONLY)
    assert factor.value == pytest.approx(expected)


@pytest.mark.parametrize(("active", "median", "expected"), [
    (0, 2.0, 0.2),      # idle in a quiet class: 2 of 10 days behind, not a full sign
    (0, 14.0, 1.0),     # idle in a busy class: 14 days behind, clamped to 1
    (4, 9.0, 0.5),      # (9 - 4) / 10
    (9, 9.0, 0.0),      # at the median
    (12, 9.0, 0.0),     # above it: clamped, never negative
    (0, 0.0, 0.0),      # an idle cohort: nobody is behind
    (3, None, 0.0),     # no cohort at all
])
def test_days_behind_cohort_edges(active: int, median: float | None, expected: float) -> None:
    factor = cohort_gap_factor(row(active), Cohort(median_active_days=median), COHORT_ONLY)
    assert factor.value == pytest.approx(expected)
    assert factor.detail["full_at_days_behind"] == 10.0


def test_days_behind_cohort_counts_days_where_below_cohort_activity_counts_shares() -> None:
    """The same idle student: 100 % below a quiet class's median but only 2 days behind it."""
    quiet = Cohort(median_active_days=2.0)
    idle = row(0)
    assert cohort_activity_factor(idle, quiet, COHORT_ONLY).value == pytest.approx(1.0)
    assert cohort_gap_factor(idle, quiet, COHORT_ONLY).value == pytest.approx(0.2)
    halved = replace(COHORT_ONLY, cohort_gap_days=4.0)
    assert cohort_gap_factor(idle, quiet, halved).value == pytest.approx(0.5)


def test_a_gap_weight_alone_makes_the_score_read_cohorts() -> None:
    gap_only = COHORT_ONLY.with_weights({**{n: 0.0 for n in COHORT_ONLY.weights()},
                                         "days_behind_cohort": 1.0})
    assert gap_only.cohort_gap_weight == 1.0 and gap_only.uses_cohorts
    assert not RiskParams().uses_cohorts
    base = {"last_at": NOW, "first_at": NOW, "login_events": 0, "quests_started": 0,
            "quests_completed": 0, "sessions": 0, "avg_session_minutes": None,
            "longest_streak": 0, "current_streak": 0, "quests_due": 0, "quests_missed": 0,
            "quests_late": 0, "recent_active_days": 0}
    assessment = risk.assess({**row(4), **base}, now=NOW, params=gap_only,
                             cohort=Cohort(9.0, None))
    assert assessment.score == pytest.approx(0.5)
    assert [f.name for f in assessment.factors] == ["days_behind_cohort"]


def test_seed_defaults_leave_cohort_factors_out() -> None:
    assessment = risk.assess({**row(0, 10.0), "last_at": NOW, "first_at": NOW,
                              "login_events": 0, "quests_started": 0, "quests_completed": 0,
                              "sessions": 0, "avg_session_minutes": None, "longest_streak": 0,
                              "current_streak": 0, "quests_due": 0, "quests_missed": 0,
                              "quests_late": 0, "recent_active_days": 0},
                             now=NOW, cohort=Cohort(8.0, 80.0))
    names = {f.name for f in assessment.factors}
    assert "below_cohort_activity" not in names and "below_cohort_scores" not in names
    assert "days_behind_cohort" not in names
    assert "missed_more_than_cohort" not in names and "late_more_than_cohort" not in names


def test_cohort_weights_make_the_score() -> None:
    base = {"last_at": NOW, "first_at": NOW, "login_events": 0, "quests_started": 0,
            "quests_completed": 0, "sessions": 0, "avg_session_minutes": None,
            "longest_streak": 0, "current_streak": 0, "quests_due": 0, "quests_missed": 0,
            "quests_late": 0, "recent_active_days": 0}
    assessment = risk.assess({**row(2, 60.0), **base}, now=NOW, params=COHORT_ONLY,
                             cohort=Cohort(8.0, 80.0))
    assert assessment.score == pytest.approx(0.5 * 0.75 + 0.5 * 0.25)


# ---- whose cohort: the student's class where there is one ---------------------------------


def test_a_class_of_five_is_its_students_cohort_and_smaller_ones_fall_back() -> None:
    quiet = [row(2, 40.0) for _ in range(5)]
    busy = [row(12, 90.0) for _ in range(6)]
    tiny = [row(1) for _ in range(4)]
    loner = row(7)
    both = quiet[0]  # also in the busy class: the larger class is their cohort
    classes: dict[Any, list[str]] = {r["user_id"]: ["quiet"] for r in quiet}
    classes.update({r["user_id"]: ["busy"] for r in busy})
    classes.update({r["user_id"]: ["tiny"] for r in tiny})
    classes[both["user_id"]] = ["busy", "quiet"]
    rows = [*quiet, *busy, *tiny, loner]
    cohorts = risk.cohorts_of(rows, classes)
    everyone = cohort_of(rows)
    assert cohorts.of(quiet[1]["user_id"]) == cohort_of(quiet, "class")
    assert cohorts.of(busy[0]["user_id"]) == cohort_of([*busy, both], "class")
    assert cohorts.of(both["user_id"]) == cohort_of([*busy, both], "class")  # 7 beat 5
    assert everyone.scope == "everyone"
    assert cohorts.of(tiny[0]["user_id"]) == everyone  # 4 < MIN_CLASS_COHORT
    assert cohorts.of(loner["user_id"]) == everyone
    assert risk.cohorts_of(rows, {}).of(quiet[1]["user_id"]) == everyone  # no classes at all


def test_scoring_compares_a_student_with_their_class(conn: Any) -> None:
    """Two classes: the quiet one's students are not behind *their* class, though they are
    behind everyone; a student without a class is compared with everyone."""
    quiet = [uuid.uuid4() for _ in range(5)]
    busy = [uuid.uuid4() for _ in range(7)]
    outsider = uuid.uuid4()
    for students, days in ((quiet, 2), (busy, 10), ([outsider], 2)):
        for student in students:
            for d in range(days):
                add_event(conn, "page_view", NOW - timedelta(days=d + 1), user_id=student)
    for name, students in (("quiet", quiet), ("busy", busy)):
        class_id = conn.execute("INSERT INTO classes (name) VALUES (%s) RETURNING class_id",
                                (name,)).fetchone()[0]
        for student in students:
            conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                         "VALUES (%s, %s, 'student')", (class_id, student))
    scored = {a.user_id: a for a in risk.score_students(conn, now=NOW, params=COHORT_ONLY,
                                                        history_days=HISTORY_DAYS)}

    def behind(user: uuid.UUID) -> float:
        return next(f.value for f in scored[user].factors if f.name == "below_cohort_activity")

    assert behind(quiet[0]) == 0.0  # 2 days, the quiet class's median is 2 (everyone's: 10)
    assert behind(busy[0]) == 0.0
    assert behind(outsider) == pytest.approx(1 - 2 / 10)  # everyone's median: 10


def test_a_live_answer_for_one_student_uses_the_stored_medians(conn: Any, db: Any,
                                                               auth: Any) -> None:
    """`waymark score` stores the medians; scoring one student afterwards (the engagement
    answer) compares them with their class, not with themselves, and a student reads the
    population's and their own class's medians only."""
    quiet = [uuid.uuid4() for _ in range(5)]
    busy = [uuid.uuid4() for _ in range(7)]
    slacker = uuid.uuid4()  # in the busy class, active on 1 day
    for students, days in ((quiet, 2), (busy, 10), ([slacker], 1)):
        for student in students:
            for d in range(days):
                add_event(conn, "page_view", NOW - timedelta(days=d + 1), user_id=student)
    class_of = {}
    for name, students in (("quiet", quiet), ("busy", [*busy, slacker])):
        class_of[name] = conn.execute("INSERT INTO classes (name) VALUES (%s) "
                                      "RETURNING class_id", (name,)).fetchone()[0]
        for student in students:
            conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                         "VALUES (%s, %s, 'student')", (class_of[name], student))
    alone = risk.score_students(conn, now=NOW, params=COHORT_ONLY, user_ids=[slacker],
                                history_days=HISTORY_DAYS)
    assert alone[0].score == 0.0  # nothing stored yet: compared with themselves only
    analytics_jobs.score_all(db, now=NOW, batch_size=4, params=COHORT_ONLY,
                             history_days=HISTORY_DAYS)
    live = risk.score_students(conn, now=NOW, params=COHORT_ONLY, user_ids=[slacker],
                               history_days=HISTORY_DAYS)
    stored = conn.execute("SELECT risk_score FROM learning_journey_events WHERE user_id = %s "
                          "AND milestone = 'risk_assessment'", (slacker,)).fetchone()
    assert stored is not None and float(stored[0]) > 0.4  # 1 day against the class's 10
    assert live[0].score == pytest.approx(float(stored[0]))
    # an outsider with 2 active days: behind the population's median (10) in both
    outsider = uuid.uuid4()
    for d in range(2):
        add_event(conn, "page_view", NOW - timedelta(days=d + 1), user_id=outsider)
    behind = risk.score_students(conn, now=NOW, params=COHORT_ONLY, user_ids=[outsider],
                                 history_days=HISTORY_DAYS)
    assert next(f.value for f in behind[0].factors
                if f.name == "below_cohort_activity") == pytest.approx(0.8)
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(auth.claims(quiet[1], "student")),))
        conn.execute("SET LOCAL ROLE authenticated")
        seen = {r[0] for r in conn.execute("SELECT class_id FROM risk_cohort_medians")}
        conn.execute("RESET ROLE")
    assert seen == {None, class_of["quiet"]}
    # An admin reads every class's medians, so their live score of the slacker (the
    # engagement answer) compares with the class too and agrees with the stored score.
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(auth.claims(uuid.uuid4(), "admin")),))
        conn.execute("SET LOCAL ROLE authenticated")
        seen = {r[0] for r in conn.execute("SELECT class_id FROM risk_cohort_medians")}
        as_admin = risk.score_students(conn, now=NOW, params=COHORT_ONLY, user_ids=[slacker],
                                       history_days=HISTORY_DAYS)
        conn.execute("RESET ROLE")
    assert seen == {None, class_of["quiet"], class_of["busy"]}
    assert as_admin[0].score == pytest.approx(float(stored[0]))
    assert {f.detail["cohort"] for f in as_admin[0].factors} == {"class"}


def test_the_deadline_shares_are_stored_and_a_live_answer_compares_with_them(
        conn: Any, db: Any) -> None:
    """`waymark score` stores the class's median shares of missed and late work; a student
    scored alone afterwards is compared with those, as the stored score was."""
    students = [uuid.uuid4() for _ in range(5)]
    slacker = students[0]  # misses both quests; the others hand both in on time
    due = NOW - timedelta(days=2)
    class_id = conn.execute("INSERT INTO classes (name) VALUES ('essays') "
                            "RETURNING class_id").fetchone()[0]
    for student in students:
        conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                     "VALUES (%s, %s, 'student')", (class_id, student))
        for quest in ("q1", "q2"):
            add_event(conn, "quest_assigned", NOW - timedelta(days=9), user_id=student,
                      data={"quest_id": quest, "due_at": due.isoformat()})
            if student != slacker:
                add_event(conn, "quest_completed", due - timedelta(days=1), user_id=student,
                          data={"quest_id": quest})
    alone = risk.score_students(conn, now=NOW, params=DEADLINES_ONLY, user_ids=[slacker],
                                history_days=HISTORY_DAYS)
    assert alone[0].score == 0.0  # nothing stored: compared with themselves only
    analytics_jobs.score_all(db, now=NOW, batch_size=2, params=DEADLINES_ONLY,
                             history_days=HISTORY_DAYS)
    stored = conn.execute("SELECT median_missed_share, median_late_share FROM "
                          "risk_cohort_medians WHERE class_id = %s", (class_id,)).fetchone()
    assert stored == (0.0, 0.0)
    live = risk.score_students(conn, now=NOW, params=DEADLINES_ONLY, user_ids=[slacker],
                               history_days=HISTORY_DAYS)
    assert live[0].score == pytest.approx(0.5)  # all missed, the class missed none
    missed = next(f for f in live[0].factors if f.name == "missed_more_than_cohort")
    assert missed.explanation == ("missed 2 of 2 quests due in the last 30 days (100 %), "
                                  "the class's median 0 % (50 points above it counts in full)")
