"""After real traffic on every ingestion path, the whole database holds no test IP and no test UA.

Checked twice: in a ``pg_dump`` of the test database (the system's pg_dump, or the one bundled
with pgserver when the server is the embedded one), and by scanning every text, json(b) and
bytea column of every table with SQL (which works with any server).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from ingestion_support import CHROME_UA, count, flush

from backend import create_app

TEST_IP = "203.0.113.77"
TEST_UA_MARK = "ZqxUniqueTestUA/4.2"
TEST_UA = f"{CHROME_UA} {TEST_UA_MARK}"

COLUMNS = """
SELECT n.nspname, c.relname, a.attname, t.typname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND t.typname IN ('text', 'varchar', 'json', 'jsonb', 'bytea', 'bpchar', 'name')
"""


def _traffic(app: Flask, auth: Any) -> None:
    client = app.test_client()
    headers = {"User-Agent": TEST_UA, "X-Forwarded-For": TEST_IP, "Origin": "https://t.example"}
    signed = {**headers, **auth.header(uuid.uuid4())}
    api = "/api/analytics"
    client.post(f"{api}/activity/track", json={"event_type": "page_view", "page_path": "/"},
                headers=headers)
    client.post(f"{api}/activity/batch", json={"events": [
        {"event_type": "quest_started", "event_data": {"quest_id": "q1"}},
        {"event_type": "bad type"}]}, headers=signed)
    client.post(f"{api}/errors", json={"message": "boom", "stack": "at x (a.js:1:2)"},
                headers=headers)
    client.post(f"{api}/sessions", json={"page_path": "/"}, headers=headers)
    client.post(f"{api}/collect", json={"url": "https://t.example/?utm_source=s",
                                        "consent": True}, headers=headers)
    client.post(f"{api}/measure", json={"event": "signup", "user_id": "u-1"}, headers=headers)
    client.get("/definitely-not-a-page", headers=headers)  # the middleware records host 404s
    flush(app)


def _pg_dump(db_url: str, server_version: int) -> str:
    candidates = [shutil.which("pg_dump")]
    try:
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"))
    except ImportError:
        pass
    for binary in filter(None, candidates):
        done = subprocess.run([binary, "--dbname", db_url, "--no-owner"], capture_output=True,
                              text=True, timeout=120)
        if done.returncode == 0:
            return done.stdout
    raise AssertionError(f"no pg_dump could dump a PostgreSQL {server_version} database")


def test_no_raw_ip_or_user_agent_anywhere(app_config: dict[str, Any], db_url: str,
                                          conn: psycopg.Connection[Any], auth: Any) -> None:
    app_config["WAYMARK_TRUSTED_PROXIES"] = 1
    app = create_app(app_config)
    try:
        _traffic(app, auth)
    finally:
        app.extensions["waymark"].close()
    assert count(conn, "user_activity_events") >= 5  # the traffic was stored, not refused
    assert count(conn, "error_events") == 1 and count(conn, "user_sessions") >= 1

    version = conn.info.server_version // 10000
    dump = _pg_dump(db_url, version)
    assert "user_activity_events" in dump
    assert TEST_IP not in dump and TEST_UA_MARK not in dump and "ZqxUnique" not in dump

    for schema, table, column, type_name in conn.execute(COLUMNS).fetchall():
        ident = psycopg.sql.SQL("{}.{}").format(psycopg.sql.Identifier(schema),
                                               psycopg.sql.Identifier(table))
        col = psycopg.sql.Identifier(column)
        for needle in (TEST_IP, TEST_UA_MARK):
            if type_name == "bytea":
                query = psycopg.sql.SQL(
                    "SELECT count(*) FROM {} WHERE position(convert_to(%s, 'UTF8') IN {}) > 0")
            else:
                query = psycopg.sql.SQL("SELECT count(*) FROM {} WHERE strpos({}::text, %s) > 0")
            found = conn.execute(query.format(ident, col), (needle,)).fetchone()
            assert found == (0,), f"{needle!r} found in {schema}.{table}.{column}"
