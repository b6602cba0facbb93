"""``waymark risk-backtest``: AUC, precision/recall and lead time on a known history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import HISTORY_DAYS, add_event
from click.testing import CliRunner

from backend.scripts import backtest
from backend.scripts.cli import main
from backend.services.analytics import risk

DAY0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEAVERS = [uuid.UUID(f"00000000-0000-4000-8000-0000000001{n:02d}") for n in range(3)]
STAYERS = [uuid.UUID(f"00000000-0000-4000-8000-0000000002{n:02d}") for n in range(3)]


def history(conn: psycopg.Connection[Any]) -> None:
    """Leavers stop on day 10 and withdraw on day 45; stayers are active every day."""
    for student in LEAVERS + STAYERS:
        last = 10 if student in LEAVERS else 60
        for day in range(last):
            at = DAY0 + timedelta(days=day)
            add_event(conn, "login_success", at, user_id=student)
            add_event(conn, "page_view", at + timedelta(minutes=1), user_id=student,
                      duration_ms=20 * 60_000)
    for student in LEAVERS:
        add_event(conn, "course_withdrawn", DAY0 + timedelta(days=45), user_id=student)


def test_backtest_separates_leavers_and_measures_lead_time(conn: psycopg.Connection[Any]) -> None:
    history(conn)
    result = backtest.backtest(conn, outcome="course_withdrawn", as_of=DAY0 + timedelta(days=35),
                               threshold=0.5, step=timedelta(days=7),
                               params=risk.DEFAULT_PARAMS, history_days=HISTORY_DAYS)
    assert (result.students, result.positives) == (6, 3)
    assert result.auc == 1.0
    assert (result.precision, result.recall, result.flagged_positives) == (1.0, 1.0, 3)
    # first flagged on a weekly step after the last activity (day 10), outcome on day 45
    assert result.lead_days is not None
    low, median, high = result.lead_days
    assert 10 < low <= median <= high <= 35, result.lead_days   # flagged before as-of


def test_the_command_prints_the_figures(db_url: str, conn: psycopg.Connection[Any]) -> None:
    history(conn)
    result = CliRunner().invoke(main, ["risk-backtest", "--as-of", "2026-02-09",
                                       "--threshold", "0.5"],
                                env={"DATABASE_URL": db_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "AUC: 1.000" in result.output
    assert "precision / recall at 0.5: 1.000 / 1.000" in result.output
    assert "lead time, days from first flag to outcome" in result.output


def test_the_command_says_why_there_is_no_auc(db_url: str, conn: psycopg.Connection[Any]) -> None:
    """After the last withdrawal nobody scored reaches the outcome: no AUC, and the fix."""
    history(conn)
    result = CliRunner().invoke(main, ["risk-backtest", "--as-of", "2026-02-25"],
                                env={"DATABASE_URL": db_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ("AUC: none (no student scored then reached course_withdrawn later: pick an "
            "earlier --as-of)") in result.output
    assert "nan" not in result.output


def test_the_command_reads_a_history_as_far_back_as_the_deployment_keeps_it(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    """A student assigned work 120 days before the as-of moment who never came is scored by
    ``waymark score`` under ``WAYMARK_ANONYMIZE_AFTER_DAYS=365``; so by the backtest."""
    history(conn)
    add_event(conn, "quest_assigned", DAY0 + timedelta(days=35) - timedelta(days=120),
              user_id=uuid.uuid4(), data={"quest_id": "essay"})

    def students(env: dict[str, str]) -> str:
        result = CliRunner().invoke(main, ["risk-backtest", "--as-of", "2026-02-09"],
                                    env={"DATABASE_URL": db_url, **env},
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines()
                    if line.startswith("students scored"))

    assert students({}).endswith(": 6 (3)")
    assert students({"WAYMARK_ANONYMIZE_AFTER_DAYS": "365"}).endswith(": 7 (3)")
