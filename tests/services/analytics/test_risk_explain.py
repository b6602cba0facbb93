"""Every risk factor in words: the sentence made from the detail each factor function gives,
at its edges (nothing due, no session, an idle class, a stored detail of an older shape)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.services.analytics import risk
from backend.services.analytics.risk import CALIBRATED_PARAMS, DEFAULT_PARAMS, Cohort
from backend.services.analytics.risk import factors as f
from backend.services.analytics.risk.explain import explain, with_explanations

NOW = datetime(2026, 3, 15, 9, 10, tzinfo=UTC)
CLASS = Cohort(median_active_days=9.0, median_xp=74.0, scope="class")
SCHOOL = Cohort(median_active_days=8.5, median_xp=70.0, scope="everyone")
DEADLINE_CLASS = Cohort(median_missed_share=0.2, median_late_share=0.0, scope="class")


def row(**changes: Any) -> dict[str, Any]:
    """One student's raw numbers (a row of ``fetch_inputs``): active, on time, nothing odd."""
    base: dict[str, Any] = {
        "user_id": uuid.uuid4(), "first_at": NOW - timedelta(days=60),
        "last_at": NOW - timedelta(hours=3), "active_days": 12, "login_events": 4,
        "recent_active_days": 6, "quests_started": 5, "quests_completed": 3, "sessions": 14,
        "avg_session_minutes": 12.34, "longest_streak": 5, "current_streak": 2,
        "quests_due": 5, "quests_missed": 3, "quests_late": 1, "scored_quests": 4,
        "mean_xp": 62.5}
    return {**base, **changes}


def words(factor: f.Factor) -> str:
    assert factor.as_dict()["explanation"] == factor.explanation
    return factor.explanation


SEED, PRESET = DEFAULT_PARAMS, CALIBRATED_PARAMS


@pytest.mark.parametrize(("factor", "sentence"), [
    # inactivity: hours ago, days ago, never active at all
    (lambda: f.inactivity_factor(row(), NOW, SEED), "active in the last 24 hours"),
    (lambda: f.inactivity_factor(row(last_at=NOW - timedelta(days=9, hours=20)), NOW, SEED),
     "no activity for 9 days"),
    (lambda: f.inactivity_factor(row(last_at=NOW - timedelta(days=1, hours=1)), NOW, SEED),
     "no activity for 1 day"),
    (lambda: f.inactivity_factor(row(last_at=None), NOW, SEED),
     "never active: only work assigned so far"),
    # login frequency: over the observed part of the window; none at all
    (lambda: f.login_factor(row(), NOW, SEED),
     "active on 12 of the last 30 days: 2.8 a week, 3 expected"),
    (lambda: f.login_factor(row(active_days=0), NOW, SEED),
     "not active in the last 30 days (3 days a week expected)"),
    (lambda: f.login_factor(row(first_at=NOW - timedelta(days=2), active_days=1), NOW, SEED),
     "active on 1 of the last 7 days: 1 a week, 3 expected"),  # a new student: 7 days at least
    # quest completion: none started
    (lambda: f.quest_factor(row(), SEED), "completed 3 of 5 quests started in the last 30 days"),
    (lambda: f.quest_factor(row(quests_started=1, quests_completed=0), SEED),
     "completed 0 of 1 quest started in the last 30 days"),
    (lambda: f.quest_factor(row(quests_started=0, quests_completed=0), SEED),
     "no quest started in the last 30 days"),
    # sessions: none, one
    (lambda: f.session_factor(row(), SEED),
     "14 sessions in the last 30 days, 12.3 min on average (target 15 min)"),
    (lambda: f.session_factor(row(sessions=1, avg_session_minutes=4.0), SEED),
     "1 session in the last 30 days, 4 min on average (target 15 min)"),
    (lambda: f.session_factor(row(sessions=0, avg_session_minutes=None), SEED),
     "no session in the last 30 days"),
    # streaks: broken, alive but shorter, the longest, no active day
    (lambda: f.streak_factor(row(current_streak=0), SEED),
     "no current streak (the longest was 5 days in a row)"),
    (lambda: f.streak_factor(row(), SEED), "a streak of 2 days now, the longest was 5"),
    (lambda: f.streak_factor(row(current_streak=5), SEED),
     "on their longest streak: 5 days in a row"),
    (lambda: f.streak_factor(row(current_streak=0, longest_streak=1), SEED),
     "no current streak (the longest was 1 day)"),
    (lambda: f.streak_factor(row(current_streak=1, longest_streak=1), SEED),
     "on their longest streak: 1 day"),
    (lambda: f.streak_factor(row(current_streak=0, longest_streak=0), SEED),
     "no active day, so no streak"),
    # deadlines: nothing due, none missed, the preset's full share
    (lambda: f.deadline_factor(row(), SEED), "missed 3 of 5 quests due in the last 30 days"),
    (lambda: f.deadline_factor(row(quests_due=0, quests_missed=0), SEED),
     "no quest due in the last 30 days"),
    (lambda: f.deadline_factor(row(quests_missed=0), SEED),
     "missed 0 of 5 quests due in the last 30 days"),
    (lambda: f.deadline_factor(row(), PRESET),
     "missed 3 of 5 quests due in the last 84 days; missing 50 % of them counts in full"),
    (lambda: f.late_factor(row(), SEED),
     "handed in 1 of 5 quests due in the last 30 days after the deadline"),
    (lambda: f.late_factor(row(quests_due=0, quests_late=0), SEED),
     "no quest due in the last 30 days"),
    (lambda: f.late_factor(row(), PRESET),
     "handed in 1 of 5 quests due in the last 84 days after the deadline; "
     "50 % of them late counts in full"),
    # scores: nothing scored; the preset's floor, with missed work counted at it
    (lambda: f.score_factor(row(), SEED),
     "mean score 62.5 over 4 scored quests in the last 30 days (target 100)"),
    (lambda: f.score_factor(row(scored_quests=0, mean_xp=None), SEED),
     "no scored quest in the last 30 days"),
    (lambda: f.score_factor(row(scored_quests=1, mean_xp=80.0, quests_missed=1), PRESET),
     "mean score 70 over 1 scored quest and 1 missed quest counted as 60 in the last 84 days "
     "(target 100, floor 60)"),
    (lambda: f.score_factor(row(scored_quests=0, mean_xp=None, quests_missed=2), PRESET),
     "2 missed quests counted as 60, nothing else scored in the last 84 days "
     "(target 100, floor 60)"),
    # declining activity: against the student's earlier weeks; nothing earlier
    (lambda: f.trend_factor(row(recent_active_days=2), NOW, SEED),
     "active 1 day a week in the last 14 days, 4.4 before"),
    (lambda: f.trend_factor(row(recent_active_days=1), NOW, SEED),
     "active 0.5 days a week in the last 14 days, 4.8 before"),
    (lambda: f.trend_factor(row(active_days=3, recent_active_days=3), NOW, SEED),
     "no earlier active weeks to compare with"),
    (lambda: f.trend_factor(row(first_at=NOW - timedelta(days=3)), NOW, SEED),
     "no earlier active weeks to compare with"),  # a new student: no earlier part
    # below the cohort's activity: the class, the school, at the median, an idle class
    (lambda: f.cohort_activity_factor(row(active_days=2), CLASS, SEED),
     "active on 2 of the class's median 9 days in the last 30 days"),
    (lambda: f.cohort_activity_factor(row(active_days=0), SCHOOL, SEED),
     "active on 0 of the school's median 8.5 days in the last 30 days"),
    (lambda: f.cohort_activity_factor(row(active_days=9), CLASS, SEED),
     "active on 9 days in the last 30 days, at or above the class's median of 9"),
    (lambda: f.cohort_activity_factor(row(), Cohort(0.0, None, "class"), SEED),
     "no comparison: the class's median is 0 active days in the last 30 days"),
    (lambda: f.cohort_activity_factor(row(), Cohort(), SEED), "no one to compare with"),
    # below the cohort's scores: nothing of their own, nobody scored, above
    (lambda: f.cohort_score_factor(row(mean_xp=52.0), CLASS, SEED),
     "mean score 52 in the last 30 days, below the class's median of 74"),
    (lambda: f.cohort_score_factor(row(mean_xp=80.0), SCHOOL, PRESET),
     "mean score 80 in the last 84 days, at or above the school's median of 70"),
    (lambda: f.cohort_score_factor(row(scored_quests=0, mean_xp=None), CLASS, SEED),
     "no scored quest of their own to compare with the class"),
    (lambda: f.cohort_score_factor(row(), Cohort(9.0, None, "class"), SEED),
     "no scores in the class to compare with"),
    # days behind the cohort: behind, one day, not behind, an idle class
    (lambda: f.cohort_gap_factor(row(active_days=2), CLASS, SEED),
     "7 active days behind the class's median of 9 in the last 30 days (10 days behind counts in full)"),
    (lambda: f.cohort_gap_factor(row(active_days=8), CLASS, SEED),
     "1 active day behind the class's median of 9 in the last 30 days (10 days behind counts in full)"),
    (lambda: f.cohort_gap_factor(row(active_days=12), SCHOOL, SEED),
     "not behind: active on 12 days in the last 30 days, the school's median is 8.5"),
    (lambda: f.cohort_gap_factor(row(active_days=0), Cohort(0.0, None, "class"), SEED),
     "no comparison: the class's median is 0 active days in the last 30 days"),
    (lambda: f.cohort_gap_factor(row(active_days=0), Cohort(), SEED), "no one to compare with"),
    # missed and late work against the cohort's median share: above, at or below, nothing
    # due, no one in the class with work due
    (lambda: f.cohort_missed_factor(row(), DEADLINE_CLASS, SEED),
     "missed 3 of 5 quests due in the last 30 days (60 %), the class's median 20 % "
     "(50 points above it counts in full)"),
    (lambda: f.cohort_missed_factor(row(quests_missed=1), DEADLINE_CLASS, SEED),
     "missed 1 of 5 quests due in the last 30 days (20 %), at or below the class's median "
     "of 20 %"),
    (lambda: f.cohort_missed_factor(row(quests_due=0, quests_missed=0), DEADLINE_CLASS, SEED),
     "no quest due in the last 30 days"),
    (lambda: f.cohort_missed_factor(row(), CLASS, SEED),
     "missed 3 of 5 quests due in the last 30 days (60 %); no one in the class had work due "
     "to compare with"),
    (lambda: f.cohort_late_factor(row(quests_late=3), DEADLINE_CLASS, PRESET),
     "handed in 3 of 5 quests due in the last 84 days after the deadline (60 %), the class's "
     "median 0 % (50 points above it counts in full)"),
    (lambda: f.cohort_late_factor(row(quests_late=0), Cohort(median_late_share=0.0), SEED),
     "handed in 0 of 5 quests due in the last 30 days after the deadline (0 %), at or below "
     "the school's median of 0 %"),
])
def test_each_factor_in_words_at_its_edges(factor: Any, sentence: str) -> None:
    assert words(factor()) == sentence


def test_every_factor_has_its_own_sentence() -> None:
    """No factor falls back to its name: a new factor must be given words."""
    made = f.all_factors(row(), now=NOW, params=SEED, cohort=CLASS)
    assert {x.name for x in made} == set(SEED.weights())
    for factor in made:
        assert factor.explanation != factor.name.replace("_", " "), factor.name


def test_stored_factors_are_given_words_from_their_detail_when_read_back() -> None:
    """An assessment stored before explanations existed gets its sentence from its detail;
    one of an older shape (a key missing) says less rather than fail or guess."""
    stored = [{"name": "missed_deadlines", "contribution": 0.2,
               "detail": {"quests_due": 4, "quests_missed": 1, "window_days": 30.0}},
              {"name": "below_cohort_activity", "contribution": 0.1,
               "detail": {"active_days": 2, "cohort_median_active_days": 9.0}},
              {"name": "inactivity", "contribution": 0.4, "detail": {}},
              {"name": "inactivity", "contribution": 0.4, "explanation": "kept as stored"}]
    assert [x["explanation"] for x in with_explanations(stored)] == [
        "missed 1 of 4 quests due in the last 30 days",
        "active on 2 of the cohort's median 9 days",
        "inactivity",
        "kept as stored"]
    assert explain("a_factor_from_the_future", {}) == "a factor from the future"


def test_a_detail_made_now_that_does_not_fit_its_sentence_is_a_bug_and_raises() -> None:
    """Only a stored row may be of an older shape; a factor made now that cannot be put in
    words fails loudly instead of reading as its bare name."""
    with pytest.raises(KeyError):
        explain("inactivity", {})


def test_an_assessment_carries_the_sentence_of_every_factor_it_reports() -> None:
    assessment = risk.assess(row(), now=NOW, params=DEFAULT_PARAMS)
    assert [x["explanation"] for x in assessment.as_dict()["factors"]] == [
        "active in the last 24 hours", "active on 12 of the last 30 days: 2.8 a week, 3 expected",
        "completed 3 of 5 quests started in the last 30 days",
        "14 sessions in the last 30 days, 12.3 min on average (target 15 min)",
        "a streak of 2 days now, the longest was 5"]
