"""Risk self-calibration on real rows: time-ordered split, adoption, roll back, determinism."""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS

from backend.services.analytics.at_risk import at_risk_students
from backend.services.analytics.risk import (
    DEFAULT_PARAMS,
    RiskParams,
    calibrate,
    parameter_sets,
    score_students,
    store_assessments,
)
from backend.taxonomy import category_of

T0 = datetime(2026, 2, 1, tzinfo=UTC)      # fit snapshot
T1 = T0 + timedelta(days=7)                # held-out snapshot; fit labels end here
T2 = T1 + timedelta(days=7)                # held-out labels end here
ONLY_SCORES = RiskParams(inactivity_weight=0.0, login_weight=0.0, quest_weight=0.0,
                         session_weight=0.0, streak_weight=0.0, score_weight=1.0)


def add(conn: psycopg.Connection[Any], user: uuid.UUID, at: datetime, event_type: str,
        **data: Any) -> None:
    conn.execute("INSERT INTO user_activity_events (user_id, occurred_at, event_type,"
                 " event_category, event_data) VALUES (%s, %s, %s, %s, %s)",
                 (user, at, event_type, category_of(event_type), json.dumps(data)))


def cohort(conn: psycopg.Connection[Any], snapshot: datetime, *, leaves_at: datetime,
           leaver_xp: int, stayer_xp: int, size: int = 4) -> None:
    """``size`` leavers and stayers, equally active in the 5 days before ``snapshot``."""
    for leaves, xp in ((True, leaver_xp), (False, stayer_xp)):
        for _ in range(size):
            user = uuid.uuid4()
            for back in range(1, 6):
                day = snapshot - timedelta(days=back, hours=-9)
                add(conn, user, day, "login_success")
                add(conn, user, day, "quest_completed", quest_id=f"q{back}", xp=xp)
            if leaves:
                add(conn, user, leaves_at, "course_withdrawn")


def run(conn: psycopg.Connection[Any], current: RiskParams) -> calibrate.Calibration:
    return calibrate.calibrate(conn, current=current, outcome="course_withdrawn",
                               fit_at=T0, validate_at=T1, until=T2, history_days=HISTORY_DAYS)


def test_fit_finds_the_signal_and_is_adopted(conn: psycopg.Connection[Any]) -> None:

    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    result = run(conn, DEFAULT_PARAMS)
    assert result.fit_figures.auc == pytest.approx(1.0)
    assert result.candidate_figures.auc > result.current_figures.auc
    assert sum(result.candidate.weights().values()) == pytest.approx(1.0)
    assert sum(1 for w in result.candidate.weights().values() if w) <= calibrate.MAX_FACTORS
    assert result.gain_interval is not None
    low, high = result.gain_interval
    assert low <= result.candidate_figures.auc - result.current_figures.auc <= high
    assert result.validation()["auc_gain_interval"] == [round(low, 4), round(high, 4)]
    new_id = parameter_sets.adopt(conn, result, now=T2)
    active = parameter_sets.active_set(conn)
    assert active is not None and active.id == new_id and active.params == result.candidate
    assert active.label()["validation_auc"] == pytest.approx(result.candidate_figures.auc, 1e-3)


def test_set_that_does_not_beat_the_current_one_is_refused(
        conn: psycopg.Connection[Any]) -> None:
    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    fitted = run(conn, DEFAULT_PARAMS).candidate
    again = run(conn, fitted)  # the current set is already the best the search finds
    assert again.candidate_figures.auc == again.current_figures.auc
    assert parameter_sets.adopt(conn, again, now=T2) is None
    worse = replace(again, candidate=ONLY_SCORES, candidate_figures=replace(
        again.current_figures, auc=again.current_figures.auc - 0.01))
    assert not worse.better
    assert parameter_sets.adopt(conn, worse, now=T2) is None
    assert parameter_sets.active_set(conn) is None


def test_fit_reads_nothing_after_the_held_out_snapshot(conn: psycopg.Connection[Any]) -> None:

    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    before = run(conn, DEFAULT_PARAMS)
    # After T1: every fit-period stayer withdraws, and high scorers act oddly. Were any of
    # it read by the fit, its labels would flip and the fitted weights would change.
    stayers = [r[0] for r in conn.execute(
        "SELECT DISTINCT user_id FROM user_activity_events WHERE (event_data->>'xp')::int = 90"
        " AND occurred_at < %s", (T0,))]
    for user in stayers:
        add(conn, user, T1 + timedelta(days=1), "course_withdrawn")
        add(conn, user, T1 + timedelta(days=1), "quest_completed", quest_id="late", xp=0)
    after = run(conn, DEFAULT_PARAMS)
    assert after.candidate == before.candidate
    assert after.fit_figures == before.fit_figures
    assert after.current_figures != before.current_figures  # the held-out period did see it


def test_same_data_gives_the_same_set(conn: psycopg.Connection[Any]) -> None:

    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=30, stayer_xp=80, size=6)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=40, stayer_xp=70, size=6)
    assert run(conn, DEFAULT_PARAMS) == run(conn, DEFAULT_PARAMS)


def test_roll_back_reactivates_the_previous_set(conn: psycopg.Connection[Any]) -> None:

    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    result = run(conn, DEFAULT_PARAMS)
    first = parameter_sets.adopt(conn, result, now=T2)
    second = parameter_sets.adopt(conn, result, now=T2 + timedelta(hours=1))
    assert first is not None and second is not None and second > first
    assert parameter_sets.roll_back(conn, now=T2) == (second, first)
    active = parameter_sets.active_set(conn)
    assert active is not None and active.id == first
    assert parameter_sets.roll_back(conn, now=T2) == (first, None)
    assert parameter_sets.active_set(conn) is None
    assert parameter_sets.roll_back(conn, now=T2) == (None, None)


def test_auc_among_classmates_weighs_each_class_by_its_pairs() -> None:
    scores = [0.9, 0.1, 0.2, 0.8, 0.5, 0.7, 0.3, 0.99]
    labels = [True, False, True, False, False, False, False, True]
    classes = ["a", "a", "b", "b", "b", "c", "c", None]  # c: nobody left; None: no class
    # a: 1 pair, ordered right; b: 2 pairs, both wrong → (1·1 + 0·2) / 3
    assert calibrate.auc_among_classmates(scores, labels, classes) == pytest.approx(1 / 3)
    assert calibrate.auc(scores, labels) != pytest.approx(1 / 3)  # the pooled AUC differs
    assert calibrate.auc_among_classmates(scores, labels, [None] * 8) is None
    stayers_only = [None, "c", None, "c", "c", None, None, None]
    assert calibrate.auc_among_classmates(scores, labels, stayers_only) is None


def test_the_held_out_auc_among_classmates_is_reported_and_kept_with_the_set(
        conn: psycopg.Connection[Any]) -> None:
    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    without = run(conn, DEFAULT_PARAMS)
    assert without.candidate_figures.auc_among_classmates is None  # no classes yet
    klass = uuid.uuid4()
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Year 9')", (klass,))
    conn.execute("INSERT INTO class_memberships (class_id, user_id, member_role)"
                 " SELECT DISTINCT %s::uuid, user_id, 'student' FROM user_activity_events",
                 (klass,))
    result = run(conn, DEFAULT_PARAMS)
    assert result.candidate_figures.auc_among_classmates == pytest.approx(1.0)
    assert result.current_figures.auc_among_classmates == pytest.approx(
        result.current_figures.auc)  # one class: the same pairs as the whole school
    assert result.validation()["auc_among_classmates"] == pytest.approx(1.0)
    parameter_sets.adopt(conn, result, now=T2)
    active = parameter_sets.active_set(conn)
    assert active is not None and active.label()["validation_auc_among_classmates"] == 1.0


def test_the_gain_interval_is_a_paired_bootstrap_of_the_held_out_auc_gain() -> None:
    labels = [i % 3 == 0 for i in range(30)]
    right = [100.0 + i if y else float(i) for i, y in enumerate(labels)]
    wrong = [-x for x in right]
    assert calibrate.auc(right, labels) == 1.0 and calibrate.auc(wrong, labels) == 0.0
    # every draw with both outcomes ranks perfectly one way and perfectly the other
    assert calibrate.auc_gain_interval(wrong, right, labels) == (1.0, 1.0)
    assert calibrate.auc_gain_interval(right, right, labels) == (0.0, 0.0)
    assert calibrate.auc_gain_interval(right, wrong, [False] * 30) is None

    # against the definition: the same students drawn for both scores (seed 0), each draw's
    # AUCs on the drawn list itself (ties half), the 2.5th and 97.5th percentiles
    noisy = [round((i * 7919) % 13 / 13 + (0.3 if y else 0.0), 1) for i, y in enumerate(labels)]
    flat = [round((i * 104729) % 11 / 11, 1) for i in range(30)]
    draw, gains = random.Random(0), []
    for _ in range(200):
        pick = draw.choices(range(30), k=30)
        ys = [labels[i] for i in pick]
        if any(ys) and not all(ys):
            gains.append(calibrate.auc([noisy[i] for i in pick], ys)
                         - calibrate.auc([flat[i] for i in pick], ys))
    gains.sort()
    low, high = calibrate.auc_gain_interval(flat, noisy, labels, draws=200) or (None, None)
    assert (low, high) == (pytest.approx(gains[int(0.025 * (len(gains) - 1))]),
                           pytest.approx(gains[math.ceil(0.975 * (len(gains) - 1))]))
    assert low is not None and high is not None
    gain = calibrate.auc(noisy, labels) - calibrate.auc(flat, labels)
    assert low < gain < high and low < high


def test_auc_counts_ties_half() -> None:
    assert calibrate.auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert calibrate.auc([0.1, 0.9], [False, True]) == 1.0
    assert calibrate.auc([0.9, 0.1], [False, True]) == 0.0
    assert calibrate.auc([0.5, 0.5], [False, True]) == 0.5
    assert calibrate.auc([0.2, 0.4, 0.4, 0.8], [False, True, False, True]) == pytest.approx(0.875)


def test_students_who_finished_are_left_out_of_later_snapshots(
        conn: psycopg.Connection[Any]) -> None:
    """The fit period's students complete before the held-out snapshot: scored there they
    would be idle, "at risk" and never withdraw, and the held-out figures would be wrong."""
    cohort(conn, T0, leaves_at=T0 + timedelta(days=3), leaver_xp=20, stayer_xp=90)
    stayers = [user for (user,) in conn.execute(
        "SELECT DISTINCT user_id FROM user_activity_events WHERE occurred_at < %s AND user_id "
        "NOT IN (SELECT user_id FROM user_activity_events WHERE event_type = "
        "'course_withdrawn') ORDER BY 1", (T0,)).fetchall()]
    add(conn, stayers[0], T0 + timedelta(days=5), "course_completed")  # a leaving event
    for user in stayers[1:]:
        add(conn, user, T0 + timedelta(days=5), "term_passed")  # the app's own word for it
    cohort(conn, T1, leaves_at=T1 + timedelta(days=3), leaver_xp=20, stayer_xp=90)

    def held_out(finished: str | None) -> int:
        result = calibrate.calibrate(conn, current=DEFAULT_PARAMS,
                                     outcome="course_withdrawn", fit_at=T0, validate_at=T1,
                                     until=T2, finished=finished, history_days=HISTORY_DAYS)
        assert result.fit_figures.students == 8
        return result.current_figures.students

    assert held_out("term_passed") == 8  # the held-out period's own students
    # without --finished only course_completed (backend.taxonomy.LEAVING_TYPES) takes a
    # student out: the three who passed by the app's own word are scored, idle
    assert held_out(None) == 11


def test_the_logistic_fit_weighs_what_predicts_and_nothing_that_protects() -> None:
    """Deterministic data: ``signal`` raises the odds of leaving, ``protective`` lowers them,
    ``noise`` says nothing. Weights are ≥ 0, add up to 1, and the same data gives the same."""
    names = ["noise", "protective", "signal", *(f"extra{i}" for i in range(7))]
    values, labels = [], []
    for i in range(400):
        signal, noise = (i % 10) / 9, ((i * 7) % 10) / 9
        left = (i % 10) >= 6 if i % 4 else (i % 10) >= 3  # mostly the signal, not always
        values.append({"noise": noise, "protective": 1.0 if not left and i % 3 else 0.0,
                       "signal": signal, **{f"extra{k}": ((i + k) % 5) / 4 for k in range(7)}})
        labels.append(left)
    start = dict.fromkeys(names, 0.1)
    weights = calibrate.fit_logistic(values, labels, start)
    assert weights == calibrate.fit_logistic(values, labels, start)
    assert calibrate.fit_logistic(values, [False] * len(values), start) == start
    assert all(w >= 0 for w in weights.values()) and sum(weights.values()) == pytest.approx(1)
    assert sum(1 for w in weights.values() if w) <= calibrate.MAX_FACTORS
    assert weights["protective"] == 0.0
    assert weights["signal"] == max(weights.values()) and weights["signal"] > 0.3


def login_sample(params: RiskParams) -> calibrate.Sample:
    """Students active 1–7 days a week; those under 4.5 leave. Only ``low_login_frequency``
    varies: with the seed's 3 days a week it is 0 for everyone at 3 or more, so it cannot
    tell 3.5 from 6; with 5 days a week it can."""
    values, labels = [], []
    for i in range(120):
        per_week = 1 + (i % 13) / 2  # 1, 1.5, … 7
        login = min(1.0, max(0.0, 1 - per_week / params.expected_days_per_week))
        values.append({**dict.fromkeys(params.weights(), 0.0), "low_login_frequency": login})
        labels.append(per_week < 4.5)
    return values, labels


def test_normalisations_are_chosen_on_the_fit_sample_alone() -> None:
    asked: list[RiskParams] = []

    def sample_of(params: RiskParams) -> calibrate.Sample:
        asked.append(params)
        return login_sample(params)

    fitted, chosen_sample = calibrate.fit_params(sample_of, DEFAULT_PARAMS)
    assert fitted.expected_days_per_week == 5.0  # the grid value that separates 3.5 from 6
    assert fitted.weights()["low_login_frequency"] == 1.0
    values, labels = login_sample(fitted)
    assert chosen_sample == (values, labels)  # the chosen set's sample, not built again
    assert calibrate.auc([v["low_login_frequency"] for v in values], labels) == 1.0
    # the other normalisations change no value here, so they stay the seed's
    assert fitted.inactivity_days == DEFAULT_PARAMS.inactivity_days
    assert fitted.cohort_gap_days == DEFAULT_PARAMS.cohort_gap_days
    assert len(asked) == 1 + sum(len(grid) - 1 for _, grid in
                                 calibrate.HORIZON_GRID + calibrate.NORMALISATION_GRID)
    assert calibrate.fit_params(login_sample, DEFAULT_PARAMS)[0] == fitted  # deterministic


def test_the_deadline_horizon_is_chosen_on_the_fit_period_from_its_own_rows(
        conn: psycopg.Connection[Any]) -> None:
    """Leavers and stayers alike are active and score alike; only a quest due 60 days before
    each snapshot tells them apart (leavers never handed it in). The seed's 30-day deadline
    window cannot see it; the grid's 90 days can, and its rows are fetched for the trial."""
    later = T0 + timedelta(days=120)  # the held-out snapshot: its students came after T0
    for snapshot in (T0, later):
        for leaves in (True, False):
            for _ in range(4):
                user = uuid.uuid4()
                add(conn, user, snapshot - timedelta(days=80), "quest_assigned",
                    quest_id="essay", due_at=(snapshot - timedelta(days=60)).isoformat())
                # the same first activity for both: stayers hand the essay in, leavers look
                add(conn, user, snapshot - timedelta(days=61),
                    "page_view" if leaves else "quest_completed", quest_id="essay")
                for back in range(1, 6):
                    add(conn, user, snapshot - timedelta(days=back, hours=-9), "login_success")
                if leaves:
                    add(conn, user, snapshot + timedelta(days=3), "course_withdrawn")
    result = calibrate.calibrate(conn, current=DEFAULT_PARAMS, outcome="course_withdrawn",
                                 fit_at=T0, validate_at=later, until=later + timedelta(days=7),
                                 history_days=HISTORY_DAYS)
    assert result.candidate.deadline_days == 90.0
    assert result.candidate.weights()["missed_deadlines"] > 0
    assert result.fit_figures.auc == pytest.approx(1.0)
    assert result.candidate_figures.auc == pytest.approx(1.0)  # held out, at its own horizon
    assert result.current_figures.auc < 1.0


def test_a_grid_value_this_set_cannot_take_is_skipped() -> None:
    """xp_target 50: the xp_floor grid's 60 would make an invalid set; it is not tried."""
    low_target = replace(DEFAULT_PARAMS, xp_target=50.0)
    asked: list[RiskParams] = []

    def sample_of(params: RiskParams) -> calibrate.Sample:
        asked.append(params)
        return login_sample(params)

    fitted, _ = calibrate.fit_params(sample_of, low_target)
    assert fitted.xp_target == 50.0
    assert all(p.xp_floor < 50.0 for p in asked) and 40.0 in {p.xp_floor for p in asked}


def test_the_requested_days_still_set_the_window_under_an_active_set(
        conn: psycopg.Connection[Any]) -> None:
    """An active set gives the weights and horizons; the at-risk request's ``days`` still sets
    the window, as engagement's does (the dashboard's 7 / 30 / 90 days)."""
    cohort(conn, T2, leaves_at=T2 + timedelta(days=1), leaver_xp=20, stayer_xp=90, size=2)
    parameter_sets.activate(conn, ONLY_SCORES, now=T2, outcome="course_withdrawn", fit_at=T0,
                            validate_at=T1, validated_until=T2, validation={"auc": 0.9})
    for days in (7, 90):
        answer = at_risk_students(conn, now=T2, threshold=0.0, limit=10, days=days,
                                  history_days=HISTORY_DAYS)
        assert answer["days"] == days and answer["parameter_set"]["validation_auc"] == 0.9
        assert {f["name"] for s in answer["students"] for f in s["factors"]} == {
            "low_quest_scores"}  # the set's weights, not the settings'


def test_without_days_the_answer_reads_what_the_nightly_score_stored_with_the_sets_window(
        conn: psycopg.Connection[Any]) -> None:
    """A calibration may choose a 60-day window; the dashboard asks without ``days`` and
    gets the stored scores made with it, instead of everyone scored again over 30 days."""
    cohort(conn, T2, leaves_at=T2 + timedelta(days=1), leaver_xp=20, stayer_xp=90, size=2)
    fitted = replace(ONLY_SCORES, window_days=60)
    parameter_sets.activate(conn, fitted, now=T2, outcome="course_withdrawn", fit_at=T0,
                            validate_at=T1, validated_until=T2, validation={"auc": 0.9})
    store_assessments(conn, score_students(conn, now=T2, params=fitted,
                                           history_days=HISTORY_DAYS), now=T2, params=fitted)
    later = T2 + timedelta(hours=1)
    nightly = at_risk_students(conn, now=later, threshold=0.0, limit=10,
                               history_days=HISTORY_DAYS)
    assert (nightly["source"], nightly["days"]) == ("stored", 60)
    assert nightly["computed_at"] == T2.isoformat() and nightly["students_scored"] == 4
    asked = at_risk_students(conn, now=later, threshold=0.0, limit=10, days=30,
                             history_days=HISTORY_DAYS)
    assert (asked["source"], asked["days"]) == ("live", 30)  # a window asked for is kept
