"""``waymark risk-calibrate``: prints both sets' held-out figures, adopts, rolls back; score
and risk-backtest use it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from backend.scripts import risk_jobs
from backend.scripts.cli import main
from backend.services.analytics.risk import DEFAULT_PARAMS, calibrate
from backend.taxonomy import category_of

NOW = datetime.now(UTC).replace(microsecond=0)
T0, T1 = NOW - timedelta(days=14), NOW - timedelta(days=7)


def waymark(db_url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def students(conn: psycopg.Connection[Any], snapshot: datetime) -> None:
    """Leavers hand in work scored 20, stayers 90; equally active before ``snapshot``."""
    for leaves, xp in ((True, 20), (False, 90)):
        for _ in range(3):
            user = uuid.uuid4()
            for back in range(1, 5):
                at = snapshot - timedelta(days=back)
                for event_type, data in (("login_success", {}),
                                         ("quest_completed", {"quest_id": f"q{back}", "xp": xp})):
                    conn.execute("INSERT INTO user_activity_events (user_id, occurred_at,"
                                 " event_type, event_category, event_data)"
                                 " VALUES (%s, %s, %s, %s, %s)",
                                 (user, at, event_type, category_of(event_type),
                                  json.dumps(data)))
            if leaves:
                conn.execute("INSERT INTO user_activity_events (user_id, occurred_at,"
                             " event_type, event_category) VALUES (%s, %s, 'course_withdrawn',"
                             " 'custom')", (user, snapshot + timedelta(days=2)))


def test_calibrate_adopts_then_rolls_back(db_url: str, conn: psycopg.Connection[Any]) -> None:
    students(conn, T0)
    students(conn, T1)
    args = ("risk-calibrate", "--fit-at", T0.strftime("%Y-%m-%d %H:%M:%S"),
            "--validate-at", T1.strftime("%Y-%m-%d %H:%M:%S"))
    dry = waymark(db_url, *args, "--dry-run").output
    assert "current: held-out auc=" in dry and "candidate: held-out auc=" in dry
    # Lead time, as risk-backtest measures it: the leavers are flagged at the held-out
    # snapshot by the candidate only, and withdraw two days later.
    assert ("current: held-out lead time, days from first flag to outcome (25% / median / "
            "75%) of 0 flagged: none flagged") in dry
    assert "candidate: held-out lead time, days from first flag to outcome (25% / median / " \
           "75%) of 3 flagged: 2.0 / 2.0 / 2.0" in dry
    # 1.000 against 0.250; every draw of 9 students with a leaver gains, so beyond chance
    assert "candidate − current: held-out auc +0.7500, 95 % interval +" in dry
    assert "over 1000 draws of the held-out students; more than chance" in dry
    assert "adopted=None" in dry
    assert conn.execute("SELECT count(*) FROM risk_parameter_sets").fetchone() == (0,)
    out = waymark(db_url, *args).output
    assert "better=True" in out
    (set_id, params), = conn.execute("SELECT id, params FROM risk_parameter_sets WHERE active")
    assert params["score_weight"] > 0 and f"adopted={set_id} " in out
    waymark(db_url, "score", "--no-milestones")
    stored = conn.execute("SELECT DISTINCT details -> 'params' -> 'score_weight' FROM"
                          " learning_journey_events WHERE milestone = 'risk_assessment'")
    assert [r[0] for r in stored] == [params["score_weight"]]
    backtest = ("risk-backtest", "--as-of", T1.strftime("%Y-%m-%d %H:%M:%S"))
    assert "AUC: 1.000" in waymark(db_url, *backtest).output  # the active set, as score uses
    back = waymark(db_url, "risk-calibrate", "--roll-back").output
    assert f"rolled_back={set_id} active=None" in back
    assert "AUC: 0.250" in waymark(db_url, *backtest).output  # the settings again
    assert conn.execute("SELECT count(*) FROM risk_parameter_sets WHERE active").fetchone() == (0,)


def held_out_students(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("current:"))
    return int(line.split("students=")[1].split()[0])


def test_calibrate_reads_a_history_as_far_back_as_the_deployment_keeps_it(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    """A student assigned work 120 days before the held-out snapshot who never came is a
    student to ``waymark score`` under ``WAYMARK_ANONYMIZE_AFTER_DAYS=365``; the
    calibration must see the same students (it read 90 days whatever the setting)."""
    students(conn, T0)
    students(conn, T1)
    conn.execute("INSERT INTO user_activity_events (user_id, occurred_at, event_type,"
                 " event_category, event_data) VALUES (%s, %s, 'quest_assigned', 'custom', %s)",
                 (uuid.uuid4(), T1 - timedelta(days=120),
                  json.dumps({"quest_id": "essay", "due_at": T1.isoformat()})))
    args = ("risk-calibrate", "--dry-run", "--fit-at", T0.strftime("%Y-%m-%d %H:%M:%S"),
            "--validate-at", T1.strftime("%Y-%m-%d %H:%M:%S"))
    default = held_out_students(waymark(db_url, *args).output)
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={
        "DATABASE_URL": db_url, "WAYMARK_ANONYMIZE_AFTER_DAYS": "365"})
    assert result.exit_code == 0, result.output
    assert held_out_students(result.output) == default + 1


@pytest.mark.parametrize(("interval", "reading"), [
    ((0.01, 0.08), "; more than chance"),
    ((-0.02, 0.08), "; within chance: the held-out students alone could make this difference"),
    ((-0.08, -0.01), "; worse beyond chance"),
    (None, "(no interval: the held-out period lacks an outcome, or the two sets saw different "
           "students)"),
])
def test_the_gain_line_says_what_its_interval_means(
        interval: tuple[float, float] | None, reading: str) -> None:
    def held_out(auc: float) -> calibrate.Figures:
        return calibrate.Figures(auc=auc, precision=0.0, recall=0.0, students=10, positives=2)

    result = calibrate.Calibration(
        candidate=DEFAULT_PARAMS, current_figures=held_out(0.70),
        candidate_figures=held_out(0.73), fit_figures=held_out(0.8),
        outcome="course_withdrawn", fit_at=T0, validate_at=T1, until=T1, threshold=0.7,
        gain_interval=interval)
    line = risk_jobs.gain_text(result)
    assert line.startswith("candidate − current: held-out auc +0.0300")
    assert line.endswith(reading)
