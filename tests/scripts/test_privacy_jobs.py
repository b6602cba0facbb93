"""The privacy commands end to end: frozen time, summaries, and one run at a time."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.scripts.cli import main
from backend.services.jobs import job_lock

NOW = datetime(2026, 6, 1, 0, 5, tzinfo=UTC)
USER = uuid.UUID("a0000000-0000-4000-8000-00000000000a")


def frozen(at: datetime) -> Any:
    """Freeze the clock for the command, not for the connection pool's timeouts."""
    return freeze_time(at, ignore=["psycopg_pool", "psycopg"])


def invoke(db_url: str, *args: str, **env: str) -> Any:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url, **env})
    assert result.exit_code == 0, result.output
    return result


def add_event(conn: psycopg.Connection[Any], days: float, event_type: str = "quest_started",
              user: uuid.UUID | None = USER) -> None:
    conn.execute("INSERT INTO user_activity_events (occurred_at, user_id, event_type, event_data) "
                 "VALUES (%s, %s, %s, %s)",
                 (NOW - timedelta(days=days), user, event_type,
                  Jsonb({"quest_id": "q1", "email": "kid@example.com"})))


def linked_ages(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute("SELECT round(extract(epoch FROM %s - occurred_at) / 86400)::int "
                        "FROM user_activity_events WHERE user_id IS NOT NULL ORDER BY 1",
                        (NOW,)).fetchall()
    return [r[0] for r in rows]


def all_ages(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute("SELECT round(extract(epoch FROM %s - occurred_at) / 86400)::int "
                        "FROM user_activity_events ORDER BY 1", (NOW,)).fetchall()
    return [r[0] for r in rows]


def test_anonymize_command_at_frozen_time(db_url: str, conn: psycopg.Connection[Any]) -> None:
    for days in (89, 91):
        add_event(conn, days)
    with frozen(NOW):
        first = invoke(db_url, "anonymize")
        second = invoke(db_url, "anonymize")
    assert "waymark anonymize: status=done cutoff=2026-03-03 rows=1 events=1" in first.output
    assert "rows=0" in second.output
    assert linked_ages(conn) == [89]
    assert conn.execute("SELECT count(*) FROM user_activity_events "
                        "WHERE event_data ? 'email'").fetchone() == (1,)


def test_anonymize_days_come_from_the_option_then_the_environment(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    for days in (20, 40, 70):
        add_event(conn, days)
    with frozen(NOW):
        invoke(db_url, "anonymize", WAYMARK_ANONYMIZE_AFTER_DAYS="60")
        assert linked_ages(conn) == [20, 40]
        invoke(db_url, "anonymize", "--older-than-days", "30")
    assert linked_ages(conn) == [20]


def test_purge_command_at_frozen_time(db_url: str, conn: psycopg.Connection[Any]) -> None:
    for days in (729, 731):
        add_event(conn, days)
    add_event(conn, 29, "landing_visit", None)
    add_event(conn, 31, "conversion", None)
    with frozen(NOW):
        result = invoke(db_url, "purge")
    assert ("waymark purge: status=done cutoff=2024-06-01 collect_cutoff=2026-05-02 rows=2 "
            "events=2") in result.output
    assert all_ages(conn) == [29, 729]


def test_rotate_salts_command_at_frozen_time(db_url: str,
                                             conn: psycopg.Connection[Any]) -> None:
    midnight = datetime(2026, 6, 1, tzinfo=UTC)
    for back in (2, 1):
        conn.execute("INSERT INTO tracking_salts (period_start, salt) VALUES (%s, %s)",
                     (midnight - timedelta(days=back), secrets.token_bytes(32)))
    with frozen(midnight + timedelta(minutes=5)):
        first = invoke(db_url, "rotate-salts")
    with frozen(midnight + timedelta(hours=1, minutes=5)):
        second = invoke(db_url, "rotate-salts")
    assert "created=1 destroyed=1 kept=2" in first.output
    assert "created=0 destroyed=1 kept=1 vacuum=full" in second.output
    periods = conn.execute("SELECT period_start FROM tracking_salts").fetchall()
    assert periods == [(midnight,)]


@pytest.mark.parametrize("job", ["anonymize", "purge", "rotate-salts"])
def test_a_second_concurrent_run_does_nothing(job: str, db: Database, db_url: str,
                                              conn: psycopg.Connection[Any]) -> None:
    add_event(conn, 800)
    before = conn.execute("SELECT to_jsonb(e)::text FROM user_activity_events e").fetchall()
    with job_lock(db, job) as held:  # the first run, still going
        assert held
        result = invoke(db_url, job)
        assert f"waymark {job}: status=skipped reason=another-run-holds-the-lock" in result.output
        assert conn.execute("SELECT to_jsonb(e)::text FROM user_activity_events e"
                            ).fetchall() == before
        assert conn.execute("SELECT count(*) FROM tracking_salts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM privacy_audit").fetchone() == (0,)
    after = invoke(db_url, job)  # once the first run is over, the job runs
    assert "status=done" in after.output


def test_forget_command_prints_a_receipt(db_url: str, conn: psycopg.Connection[Any]) -> None:
    add_event(conn, 3)
    add_event(conn, 4)
    summary = invoke(db_url, "forget", str(USER))
    assert "waymark forget: status=done rows=2 events=2" in summary.output
    receipt = json.loads(invoke(db_url, "forget", str(USER), "--json").output)
    assert receipt["user_id"] == str(USER) and receipt["total_rows_removed"] == 0


def test_export_command_writes_a_file(db_url: str, conn: psycopg.Connection[Any],
                                      tmp_path: Path) -> None:
    add_event(conn, 3)
    target = tmp_path / "export.json"
    result = invoke(db_url, "export", str(USER), "-o", str(target))
    assert "waymark export: status=done" in result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    assert len(document["tables"]["user_activity_events"]) == 1
