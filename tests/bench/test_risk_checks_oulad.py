"""The 2013B checks of issue #22 on a tiny OULAD-format directory: the relabelling by
fails, and that leaving a class out never lets it into the fit."""

from __future__ import annotations

import csv
import gzip
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend.services.analytics.risk import DEFAULT_PARAMS, calibrate
from backend.services.analytics.risk.inputs import student_classes
from bench import oulad_replay, risk_checks_oulad
from bench.risk_calibrate_oulad import J_DAY_0, J_END

# module, presentation, student, final_result, date_unregistration, length
REGISTRATIONS = [
    ("BBB", "2013B", "1", "Fail", "", 240),      # failed at the end of 2013B
    ("BBB", "2013B", "2", "Withdrawn", "40", 240),
    ("DDD", "2013B", "3", "Pass", "", 240),
    ("DDD", "2013B", "4", "Fail", "", 240),
    ("BBB", "2013J", "5", "Fail", "50", 260),    # a fail with an unregistration date
    ("BBB", "2013J", "6", "Distinction", "", 260),
]


def write_directory(root: Path) -> Path:
    root.mkdir(parents=True)
    with (root / "students.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code_module", "code_presentation", "id_student", "final_result",
                      "date_unregistration", "num_of_prev_attempts", "studied_credits",
                      "date_registration", "module_presentation_length"])
        for module, presentation, student, result, unregistered, length in REGISTRATIONS:
            out.writerow([module, presentation, student, result, unregistered, 0, 60, -10,
                          length])
    with gzip.open(root / "daily_activity.csv.gz", "wt", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["code_module", "code_presentation", "id_student", "date", "clicks",
                      "activity_types"])
        for module, presentation, student, *_ in REGISTRATIONS:
            for day in range(0, 30, int(student)):
                out.writerow([module, presentation, student, day, 10, 1])
    with gzip.open(root / "assessments.csv.gz", "wt", newline="") as handle:
        csv.writer(handle).writerow(
            ["code_module", "code_presentation", "id_student", "id_assessment",
             "assessment_type", "date_due", "date_submitted", "score", "is_banked"])
    return root


def user(module: str, presentation: str, student: str) -> Any:
    return oulad_replay.user_id_for((module, presentation, student))


def test_a_fail_counts_at_the_end_of_its_registration(tmp_path: Path) -> None:
    ends = risk_checks_oulad.failed_at(write_directory(tmp_path / "oulad"))

    day0 = oulad_replay.COURSE_DAY_0
    assert ends == {
        user("BBB", "2013B", "1"): day0 + timedelta(days=240, hours=18),
        user("DDD", "2013B", "4"): day0 + timedelta(days=240, hours=18),
        user("BBB", "2013J", "5"): J_DAY_0 + timedelta(days=50, hours=18),
    }


def test_leaving_a_class_out_keeps_it_out_of_the_sample_the_fit_reads(
        tmp_path: Path, db_url: str, conn: psycopg.Connection[Any]) -> None:
    oulad_replay.replay(db_url, write_directory(tmp_path / "oulad"),
                        starts={"2013J": J_DAY_0}, outcomes=True, classes=True)
    classes = student_classes(conn)
    checks = risk_checks_oulad.Checks(
        risk_checks_oulad.Snapshots(conn),
        calibrate.outcome_times(conn, "course_withdrawn", J_END), lambda at: {}, classes)
    at = oulad_replay.COURSE_DAY_0 + timedelta(days=28)
    bbb = checks.class_of(user("BBB", "2013B", "1"))
    ddd = checks.class_of(user("DDD", "2013B", "3"))

    everyone, labels = checks.sample(at, J_DAY_0, DEFAULT_PARAMS)
    without_bbb, _ = checks.sample(at, J_DAY_0, DEFAULT_PARAMS, only=lambda c: c != bbb)
    only_bbb, bbb_labels = checks.sample(at, J_DAY_0, DEFAULT_PARAMS, only=lambda c: c == bbb)

    # at day 28 student 2 has not withdrawn yet (day 40) and is labelled by it
    assert len(everyone) == 4 and sum(labels) == 1
    assert len(without_bbb) == 2 and len(only_bbb) == 2 and bbb_labels.count(True) == 1
    assert checks.class_of(user("DDD", "2013B", "4")) == ddd != bbb


def test_the_command_judges_each_outcome_and_dumps_what_it_judged(
        tmp_path: Path, pg_server_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", pg_server_url)
    name = f"wmtest_checks_{uuid.uuid4().hex[:8]}"
    risk_checks_oulad.main(["--data", str(write_directory(tmp_path / "oulad")), "--week", "4",
                            "--held-out", "--outcome", "withdrawn",
                            "--outcome", "withdrawn-or-failed", "--dump", str(tmp_path / "out"),
                            "--db-name", name])

    out = capsys.readouterr().out
    assert "outcome: withdrawn\n" in out and "outcome: withdrawn-or-failed\n" in out
    for line in ("leave one class out", "14 days later", "2013J (held out)"):
        assert out.count(f"week 4: 2013B, {line}" if "2013J" not in line
                         else f"week 4: {line}") == 2
    # 2013J at day 28: student 5 fails (unregistering on day 50), student 6 passes
    withdrawn = json.loads((tmp_path / "out" / "withdrawn" / "week4.json").read_text())
    either = json.loads((tmp_path / "out" / "withdrawn-or-failed" / "week4.json").read_text())
    assert sorted(withdrawn["held_out"]["labels"]) == [False, False]
    assert sorted(either["held_out"]["labels"]) == [False, True]
    assert len(set(either["held_out"]["classes"])) == 1  # both in BBB 2013J
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left is None
