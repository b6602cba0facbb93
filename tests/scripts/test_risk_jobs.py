"""``waymark risk-calibrate``: prints both sets' held-out figures, adopts, rolls back; score
and risk-backtest use it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from backend.scripts.cli import main
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
