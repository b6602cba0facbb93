"""`waymark warehouse-export`: a cron job like the others (summary line, lock, re-runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from analytics_support import add_event
from click.testing import CliRunner

from backend.scripts.cli import main
from backend.services.jobs import job_lock


def export(db_url: str, target: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["warehouse-export", "--to", str(target),
                                       "--settle-minutes", "0", *args],
                                env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    return result.output


def test_export_prints_its_summary_and_a_rerun_finds_nothing_new(
        db_url: str, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    add_event(conn, "page_view", datetime.now(UTC) - timedelta(hours=1))
    first = export(db_url, tmp_path)
    assert ("waymark warehouse-export: status=done format=parquet "
            "rows_user_activity_events=1 rows_error_events=0 deletions=0 files=1") in first
    assert "rows_user_activity_events=0" in export(db_url, tmp_path)


def test_a_second_concurrent_run_skips(db_url: str, db: Any, tmp_path: Path) -> None:
    with job_lock(db, "warehouse-export") as acquired:
        assert acquired
        out = export(db_url, tmp_path)
    assert "status=skipped reason=another-run-holds-the-lock" in out
    assert not (tmp_path / "user_activity_events").exists()


def test_a_bad_format_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["warehouse-export", "--to", str(tmp_path),
                                       "--format", "csv"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 2 and "csv" in result.output
