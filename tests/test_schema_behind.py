"""An upgrade deployed before `waymark migrate` ran: the app, the writer and the command say
so and name the fix; a missing table when every migration is there is a bug and fails loudly.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import AuthTokens
from ingestion_support import BROWSER, count, flush, writer_of

from backend import create_app, migrations
from backend.scripts.cli import main

AT_RISK = "/api/analytics/at-risk-students"
HEALTH = "/api/analytics/health"
LAST = migrations.discover()[-1]


def _behind_by_the_last_migration(url: str, tmp_path: Path) -> None:
    """Migrate ``url`` as the version before the last migration would have."""
    earlier = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, earlier)
    (earlier / LAST.path.name).unlink()
    migrations.migrate(url, earlier)


def test_the_target_names_what_a_database_lacks(empty_db_url: str, tmp_path: Path) -> None:
    target = migrations.SchemaTarget.from_files()
    everything = ([m.name for m in migrations.discover()]
                  + [r.name for r in migrations.discover_repeatables()])
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert target.missing(conn) == everything  # never migrated: all, in migrate's order
        _behind_by_the_last_migration(empty_db_url, tmp_path)
        assert target.missing(conn) == [LAST.name]
        assert migrations.pending(empty_db_url) == [LAST.name]
        migrations.migrate(empty_db_url)
        assert target.missing(conn) == []


def test_an_app_on_a_database_behind_its_version_answers_503_until_migrated(
        empty_db_url: str, app_config: dict[str, Any], auth: AuthTokens) -> None:
    app = create_app({**app_config, "WAYMARK_DATABASE_URL": empty_db_url})
    client = app.test_client()
    admin = auth.header(uuid.uuid4(), "admin")
    student = uuid.uuid4()
    try:
        public = client.get(HEALTH)
        assert public.status_code == 503
        assert public.get_json()["status"] == "degraded"
        assert public.get_json()["schema"] == {"up_to_date": False}  # no names without a token
        detail = client.get(HEALTH, headers=admin).get_json()["schema"]
        assert detail["pending_migrations"][0] == migrations.discover()[0].name
        for path, headers in ((AT_RISK, admin),
                              (f"/api/analytics/engagement/{student}",
                               auth.header(student, "student"))):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 503, (path, answer.get_data(as_text=True)[:200])
            assert "waymark migrate" in answer.get_json()["error"]
            assert answer.headers["Retry-After"] == "60"

        migrations.migrate(empty_db_url)  # the operator runs it while the app is up
        healthy = client.get(HEALTH, headers=admin)
        assert healthy.status_code == 200
        assert healthy.get_json()["schema"] == {"up_to_date": True, "pending_migrations": []}
        assert client.get(AT_RISK, headers=admin).status_code == 200
    finally:
        app.extensions["waymark"].close()


def test_a_missing_table_when_every_migration_is_there_is_a_loud_bug(
        app_config: dict[str, Any], conn: psycopg.Connection[Any], auth: AuthTokens) -> None:
    conn.execute("DROP TABLE public.risk_parameter_sets CASCADE")  # by hand, not by a migration
    app = create_app(app_config)
    client = app.test_client()
    admin = auth.header(uuid.uuid4(), "admin")
    try:
        assert client.get(HEALTH, headers=admin).get_json()["schema"]["up_to_date"] is True
        with pytest.raises(psycopg.errors.UndefinedTable):  # TESTING: the 500 propagates
            client.get(AT_RISK, headers=admin)
    finally:
        app.extensions["waymark"].close()


def test_events_accepted_while_the_schema_is_behind_are_stored_once_it_is_migrated(
        empty_db_url: str, app_config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    app = create_app({**app_config, "WAYMARK_DATABASE_URL": empty_db_url,
                      "WAYMARK_ACK": "queued"})
    client = app.test_client()
    try:
        with caplog.at_level(logging.ERROR, logger="waymark.writer"):
            answer = client.post("/api/analytics/activity/track",
                                 json={"event_type": "page_view", "page_path": "/quests"},
                                 headers=BROWSER)
            assert answer.status_code == 202  # queued: accepted before it is written
            assert writer_of(app).flush(2) == 1  # kept, not dropped, not dead-lettered
        lines = [r.getMessage() for r in caplog.records]
        assert any("has `waymark migrate` run for this version?" in line for line in lines), lines
        assert not any("a bug" in line for line in lines), lines

        migrations.migrate(empty_db_url)
        flush(app, timeout=30)  # the writer kept the batch and retried
        with psycopg.connect(empty_db_url) as db:
            assert count(db, "user_activity_events", "page_path = '/quests'") == 1
    finally:
        app.extensions["waymark"].close()


def test_a_command_on_a_database_behind_its_version_names_the_fix(
        empty_db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    never = runner.invoke(main, ["score"], env={"DATABASE_URL": empty_db_url})
    assert never.exit_code == 1
    assert "run `waymark migrate` first" in never.output
    assert "0001_roles_and_auth" in never.output, never.output

    migrations.migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE public.risk_parameter_sets CASCADE")
    bug = runner.invoke(main, ["score"], env={"DATABASE_URL": empty_db_url})
    assert isinstance(bug.exception, psycopg.errors.UndefinedTable)  # not dressed up as ours
