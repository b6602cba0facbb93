"""The OULAD replay and evaluation on a tiny synthetic directory in the same format."""

from __future__ import annotations

import csv
import gzip
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS

from backend.services.analytics import risk
from backend.services.analytics.risk import DEFAULT_PARAMS
from bench import oulad_replay, risk_oulad

STUDENTS = [
    # id, final_result, date_unregistration, date_registration
    ("1", "Pass", "", "-10"),        # active days 0–27, 30 clicks, submits TMA 1 on day 9
    ("2", "Withdrawn", "40", "-10"),  # active days 0–5, 5 clicks, submits nothing
    ("3", "Withdrawn", "10", "-10"),  # gone before week 4: not scored at week 4
    ("4", "Fail", "", "-10"),         # registered, never clicked
    ("5", "Withdrawn", "-5", "-10"),  # withdrew before the course started
]


def write_directory(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "students.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code_module", "code_presentation", "id_student", "final_result",
                      "date_unregistration", "num_of_prev_attempts", "studied_credits",
                      "date_registration", "module_presentation_length"])
        for student, result, unregistered, registered in STUDENTS:
            out.writerow(["AAA", "2013J", student, result, unregistered, 0, 60, registered, 100])
    days = [("1", d, 30) for d in range(28)] + [("2", d, 5) for d in range(6)] + \
        [("3", d, 10) for d in range(3)]
    with gzip.open(root / "daily_activity.csv.gz", "wt", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code_module", "code_presentation", "id_student", "date", "clicks",
                      "activity_types"])
        for student, day, clicks in days:
            out.writerow(["AAA", "2013J", student, day, clicks, 2])
    with gzip.open(root / "assessments.csv.gz", "wt", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code_module", "code_presentation", "id_student", "id_assessment",
                      "assessment_type", "date_due", "date_submitted", "score", "is_banked"])
        out.writerow(["AAA", "2013J", "1", "101", "TMA", "10.0", "9", "70.0", "0"])
        # Nobody submitted TMA 2 in time, but student 1 did later: it is on the schedule.
        out.writerow(["AAA", "2013J", "1", "102", "TMA", "", "60", "", "0"])
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_directory(tmp_path / "oulad")


def user(student: str) -> uuid.UUID:
    return oulad_replay.user_id_for(("AAA", "2013J", student))


def test_replay_maps_the_directory_to_waymark_events(
        data_dir: Path, db_url: str, conn: psycopg.Connection[Any]) -> None:
    registrations, summary = oulad_replay.replay(db_url, data_dir)

    # quest_assigned: 5 registrations × 2 assessments = 10. Student 1: 28 × (login +
    # page view) = 56, TMA 1 started on day 0 (first active day within 14 days before
    # day 10), TMA 2 (due 100, the presentation length) never in reach (no activity on
    # days 86–100), 2 completions. Student 2: 12 + TMA 1 started. Student 3: 6 + TMA 1.
    assert summary.registrations == 5
    assert summary.events == 10 + 56 + 1 + 2 + 12 + 1 + 6 + 1 == 89
    counts = Counter(dict(conn.execute(
        "SELECT event_type, count(*) FROM user_activity_events GROUP BY 1").fetchall()))
    assert counts == {"quest_assigned": 10, "login_success": 37, "page_view": 37,
                      "quest_started": 3, "quest_completed": 2}
    view = conn.execute(
        "SELECT occurred_at, duration_ms, event_data FROM user_activity_events"
        " WHERE user_id = %s AND event_type = 'page_view' ORDER BY occurred_at LIMIT 1",
        (user("1"),)).fetchone()
    assert view is not None
    assert view[0] == oulad_replay.course_time(0, 9 * 3600 + 1)
    assert view[1] == 30 * 60_000
    assert view[2] == {"clicks": 30, "activity_types": 2}
    due = conn.execute(
        "SELECT event_data ->> 'due_at' FROM user_activity_events WHERE user_id = %s"
        " AND event_type = 'quest_assigned' AND event_data ->> 'quest_id' = 'oulad-102'",
        (user("4"),)).fetchone()
    assert due == (oulad_replay.course_time(101).isoformat(),)
    assert registrations[("AAA", "2013J", "2")].withdrew


def test_week_four_scores_only_students_still_registered(
        data_dir: Path, db_url: str, conn: psycopg.Connection[Any]) -> None:
    registrations, _ = oulad_replay.replay(db_url, data_dir)
    labels = risk_oulad.population(registrations, 4)
    assert labels == {user("1"): False, user("2"): True, user("4"): False}

    result = risk_oulad.score_week(conn, 4, DEFAULT_PARAMS, labels)

    # Student 2 at day 28: inactive 22.6 days → 0.40; 6 active days in 30 observed
    # (first event: the assignment on day −10) → 0.25·(1 − 1.4/3); TMA 1 started, not
    # completed → 0.20; sessions of 5 min 1 s → 0.10·(1 − 5.0167/15); streak lost → 0.05.
    # Student 4 never showed up: 1.0. Student 1 was last seen on day 27 at 09:00:01.
    login = 0.25 * (1 - (6 / (30 / 7)) / 3)
    session = 0.10 * (1 - (5 + 1 / 60) / 15)
    student_2 = 0.40 + login + 0.20 + session + 0.05
    idle_1 = (15 * 3600 - 1) / 86400
    scored = {a.user_id: a.score for a in risk.score_students(conn, now=risk_oulad.now_for(4),
                                                              history_days=HISTORY_DAYS)}
    assert scored[user("2")] == round(student_2, 6)
    assert scored[user("4")] == 1.0
    assert scored[user("1")] == round(0.40 * idle_1 / 14, 6)
    assert result.students == 3 and result.withdrawn == 1 and result.unscored == 0
    assert result.levels == {"high": 1, "at_risk": 2}
    # The positive lies between the two negatives: AUC 0.5.
    assert result.auc == 0.5
    # At 0.7: students 2 and 4 flagged → precision 1/2, recall 1/1.
    assert (result.precision, result.recall) == (0.5, 1.0)
    # The top fifth of three is student 4 alone (1.0), who did not withdraw.
    assert result.top == (1.0, 0.0, 0.0)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.contributions["inactivity"] == pytest.approx(
        (0.40, (0.40 + 0.40 * idle_1 / 14) / 2))
    assert sum(c[0] for c in result.contributions.values()) == pytest.approx(student_2)


@pytest.mark.parametrize(("scores", "labels", "expected"), [
    ([0.1, 0.2, 0.8, 0.9], [False, False, True, True], 1.0),
    ([0.9, 0.8, 0.2, 0.1], [False, False, True, True], 0.0),
    ([0.5, 0.5, 0.5, 0.5], [False, True, False, True], 0.5),
    ([0.1, 0.4, 0.4, 0.9], [False, True, False, True], 0.875),
])
def test_auc_by_ranks(scores: list[float], labels: list[bool], expected: float) -> None:
    assert risk_oulad.auc(scores, labels) == expected


@pytest.mark.parametrize(("scores", "labels", "expected"), [
    # Ten students, the top fifth is two (from 0.9): one of them withdrew, of two who did.
    ([x / 10 for x in range(1, 11)], [x in (5, 10) for x in range(1, 11)], (0.9, 0.5, 0.5)),
    # Ties at the cut are all flagged: five equal scores, one withdrawal.
    ([0.5] * 5, [True, False, False, False, False], (0.5, 0.2, 1.0)),
    # Three students: the top fifth is the highest one alone.
    ([0.3, 0.8, 0.1], [False, True, True], (0.8, 1.0, 0.5)),
    ([], [], (1.0, 0.0, 0.0)),
])
def test_top_share_flags_the_highest_fifth(scores: list[float], labels: list[bool],
                                           expected: tuple[float, float, float]) -> None:
    assert risk_oulad.top_share(scores, labels) == expected


def test_command_line_prints_the_figures(data_dir: Path, pg_server_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    name = f"wmtest_oulad_{uuid.uuid4().hex[:8]}"
    risk_oulad.main(["--data", str(data_dir), "--week", "4", "--database", pg_server_url,
                     "--db-name", name])
    out = capsys.readouterr().out
    assert "events written" in out and " 89" in out
    assert out.count("-- week 4,") == 2
    assert "AUC" in out and "0.500" in out
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left is None


def test_scale_search_starts_from_the_preset_and_reports_a_third_set(
        data_dir: Path, pg_server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"wmtest_oulad_{uuid.uuid4().hex[:8]}"
    risk_oulad.main(["--data", str(data_dir), "--week", "4", "--database", pg_server_url,
                     "--db-name", name, "--calibrate-scale"])
    out = capsys.readouterr().out
    assert "-- scale found (weights as calibrated):" in out
    assert out.count("-- week 4,") == 3
    assert "-- week 4, scale searched parameters" in out
    # Only the searched normalisations and weights may move (the other weights are
    # rescaled with them); the horizons outside the search stay the preset's.
    found = out.split("-- scale found (weights as calibrated):", 1)[1].splitlines()[0]
    fixed = {k: v for k, v in risk.CALIBRATED_PARAMS.as_dict().items()
             if k not in risk_oulad.SCALE_SEARCH and not k.endswith("_weight")}
    for key, value in fixed.items():
        assert f"'{key}': {value!r}" in found
