"""WAYMARK_READ_DATABASE_URL: analytics read from a real streaming replica, under RLS;
writes, jobs and forget stay on the primary.

The test starts its own primary and a replica made with ``pg_basebackup -R`` on loopback
(the embedded server's binaries, run as an unprivileged user when the tests run as
root), so it never touches the shared server. Replica lag is made visible by pausing WAL
replay: what the API answers then is what the replica holds, not the primary.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import add_event
from conftest import TEST_JWT_SECRET, AuthTokens
from pg_cluster import Cluster, bin_dir, scratch_root, server_user

from backend import create_app, migrations

STUDENT = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[Cluster, Cluster]]:
    if not (bin_dir() / "pg_basebackup").exists():
        pytest.skip("no PostgreSQL server binaries to start a replica with")
    user = server_user()
    with scratch_root("wm-replica-") as root:
        primary, replica = Cluster(root, "primary", user), Cluster(root, "replica", user)
        try:
            primary.init("wal_level = replica", "max_wal_senders = 4")
            primary.start()
            replica.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                        "postgres", "-D", str(replica.data), "-R", "-X", "stream")
            replica.start()
            yield primary, replica
        finally:
            replica.stop()
            primary.stop()


def _caught_up(primary: Cluster, replica: Cluster, dbname: str) -> None:
    with psycopg.connect(primary.url(dbname), autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    deadline = time.monotonic() + 30
    with psycopg.connect(replica.url(dbname), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                               (lsn[0] if lsn else "0/0",)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the replica did not catch up within 30 s")


def test_analytics_read_the_replica_under_rls_writes_stay_on_the_primary(
        primary_and_replica: tuple[Cluster, Cluster]) -> None:
    primary, replica = primary_and_replica
    dbname = f"wm_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    migrations.migrate(primary.url(dbname))
    now = datetime.now(UTC)
    with psycopg.connect(primary.url(dbname), autocommit=True) as conn:
        for user in (STUDENT, STUDENT, OTHER):
            add_event(conn, "quest_started", now - timedelta(hours=1), user_id=user)
    _caught_up(primary, replica, dbname)
    app = create_app({"TESTING": True, "WAYMARK_DATABASE_URL": primary.url(dbname),
                      "WAYMARK_READ_DATABASE_URL": replica.url(dbname),
                      "WAYMARK_JWT_SECRET": TEST_JWT_SECRET, "WAYMARK_POOL_MAX_SIZE": 2})
    client, tokens = app.test_client(), AuthTokens()

    def counts(user: uuid.UUID, role: str = "student") -> Any:
        # calendar days: days=2 is yesterday and today, so an event an hour old counts at
        # any time of day (days=1 lost it between 00:00 and 01:00 UTC)
        answer = client.get("/api/analytics/event-counts?days=2",
                            headers=tokens.header(user, role))
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["total"]

    try:
        assert counts(STUDENT) == 2 and counts(OTHER) == 1  # RLS holds on the replica
        assert counts(ADMIN, "admin") == 3
        with psycopg.connect(replica.url(dbname), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(primary.url(dbname), autocommit=True) as conn:
                add_event(conn, "quest_started", now - timedelta(minutes=5), user_id=STUDENT)
            # the primary has 3 events of the student's, the paused replica 2: we read it
            assert counts(STUDENT) == 2
            # forget is a write: it goes to the primary (a replica would refuse it)
            forgotten = client.delete(f"/api/analytics/users/{OTHER}",
                                      headers=tokens.header(OTHER))
            assert forgotten.status_code == 200, forgotten.get_json()
            with psycopg.connect(primary.url(dbname)) as conn:
                assert conn.execute("SELECT count(*) FROM user_activity_events WHERE "
                                    "user_id = %s", (OTHER,)).fetchone() == (0,)
            assert counts(OTHER) == 1  # still on the paused replica: that is replica lag
        finally:
            with psycopg.connect(replica.url(dbname), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        _caught_up(primary, replica, dbname)
        assert counts(STUDENT) == 3 and counts(OTHER) == 0
    finally:
        app.extensions["waymark"].close()


def test_without_a_replica_reads_use_the_primary(app: Any) -> None:
    state = app.extensions["waymark"]
    assert state.replica is None and state.reads is state.db
