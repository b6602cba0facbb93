"""The database layer: pool helpers, identity per transaction, the embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from backend.db import Database, DatabaseUnavailable, start_embedded

STUDENT = uuid.UUID("11111111-1111-4111-8111-111111111111")


@pytest.fixture
def single_connection_db(db_url: str):  # type: ignore[no-untyped-def]
    db = Database(db_url, min_size=1, max_size=1)
    db.open(wait=True)
    yield db
    db.close()


def test_as_user_sets_identity_inside_the_transaction(single_connection_db: Database) -> None:
    claims = {"sub": str(STUDENT), "role": "authenticated", "app_metadata": {"role": "student"}}
    with single_connection_db.as_user(claims) as conn:
        row = conn.execute("SELECT current_user, auth.uid(), auth.role()").fetchone()
    assert row == ("authenticated", STUDENT, "authenticated")


def test_identity_does_not_survive_into_the_next_use_of_the_connection(
        single_connection_db: Database) -> None:
    claims = {"sub": str(STUDENT), "role": "authenticated"}
    with single_connection_db.as_user(claims) as conn:
        first_pid = conn.info.backend_pid
    with single_connection_db.connection() as conn:
        assert conn.info.backend_pid == first_pid  # the very same pooled connection
        row = conn.execute(
            "SELECT current_user <> 'authenticated', "
            "coalesce(current_setting('request.jwt.claims', true), ''), auth.uid()").fetchone()
    assert row == (True, "", None)


def test_identity_is_reset_even_when_the_block_fails(single_connection_db: Database) -> None:
    claims = {"sub": str(STUDENT), "role": "authenticated"}
    with pytest.raises(ZeroDivisionError), single_connection_db.as_user(claims):
        raise ZeroDivisionError
    with single_connection_db.connection() as conn:
        row = conn.execute("SELECT auth.uid(), current_user <> 'authenticated'").fetchone()
    assert row == (None, True)


def test_anonymous_caller_runs_as_anon(single_connection_db: Database) -> None:
    with single_connection_db.as_user(None) as conn:
        row = conn.execute("SELECT current_user, auth.uid(), auth.role()").fetchone()
    assert row == ("anon", None, "anon")


def test_helpers_return_dicts(single_connection_db: Database) -> None:
    assert single_connection_db.fetch_one("SELECT 1 AS one, 'x' AS two") == {"one": 1, "two": "x"}
    assert single_connection_db.fetch_all(
        "SELECT g AS n FROM generate_series(1, 3) g") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert single_connection_db.ping() is True


def test_unreachable_server_is_reported_not_raised_from_psycopg() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none", min_size=1, max_size=1)
    with pytest.raises(DatabaseUnavailable):
        db.open(wait=True, timeout=1)
    assert db.ping(timeout=0.5) is False
    db.close()


def test_embedded_server_starts_and_is_reused(tmp_path: Path) -> None:
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"wm-emb-{uuid.uuid4().hex[:8]}"
    url = start_embedded(data_dir)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE marker (id int)")
        conn.commit()
    # A second process asking for the same data directory reuses the running server.
    code = (
        "import psycopg, sys; from pathlib import Path; "
        "from backend.db import start_embedded; "
        f"url = start_embedded(Path({str(data_dir)!r})); "
        "c = psycopg.connect(url); "
        "print(c.execute(\"select to_regclass('marker') is not null\").fetchone()[0]); "
        "print(url)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out[0] == "True"
    assert out[1] == url
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
