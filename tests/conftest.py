"""Shared fixtures: a real PostgreSQL, a migrated template, one cloned database per test.

``TEST_DATABASE_URL`` (a superuser connection, e.g. postgresql://postgres@127.0.0.1/test)
picks the server; without it an embedded server (pgserver) is started for the run.
Each test that asks for ``db_url`` gets its own database cloned from a template that was
migrated once, so tests are isolated and cheap (a clone takes tens of milliseconds).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backend import create_app, migrations
from backend.db import Database

TEST_JWT_SECRET = "waymark-test-secret-at-least-32-bytes-long!"
_PID = os.getpid()
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A superuser URL for the server the tests use (TEST_DATABASE_URL or embedded)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    tmp = Path(tempfile.mkdtemp(prefix="wmpg-"))
    server = pgserver.get_server(tmp, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def db_url_for(server_url: str, dbname: str) -> str:
    """The same server, another database."""
    return make_conninfo(server_url, dbname=dbname)


def _drop_stale_databases(conn: psycopg.Connection[Any]) -> None:
    """Drop test databases left by runs that died (their pid is gone)."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname ~ '^wmtest_(tpl|db)_[0-9]+'").fetchall()
    for (name,) in rows:
        match = re.match(r"^wmtest_(?:tpl|db)_(\d+)", name)
        if not match:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            continue  # a live run owns it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A database migrated once per run; each test clones it."""
    name = f"wmtest_tpl_{_PID}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        _drop_stale_databases(conn)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrations.migrate(db_url_for(pg_server_url, name))
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A brand-new, unmigrated database (for migration tests)."""
    yield from _scratch_database(pg_server_url, template="template0")


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database of this test's own."""
    yield from _scratch_database(pg_server_url, template=template_db)


def _scratch_database(server_url: str, template: str) -> Iterator[str]:
    name = f"wmtest_db_{_PID}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        for attempt in range(50):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
                break
            except psycopg.errors.ObjectInUse:
                # The template is briefly in use (e.g. a stray connection): try again.
                if attempt == 49:
                    raise
                time.sleep(0.1)
    yield db_url_for(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection (autocommit) to the test's database, for setup and checks."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """Waymark's own pool on the test's database: the service connection services use."""
    database = Database(db_url, min_size=1, max_size=3)
    database.open(wait=True)
    yield database
    database.close()


@pytest.fixture
def app_config(db_url: str) -> dict[str, Any]:
    """The config each test app starts from; tests may adjust it before using ``app``."""
    return {
        "TESTING": True,
        "WAYMARK_DATABASE_URL": db_url,
        "WAYMARK_JWT_SECRET": TEST_JWT_SECRET,
        "WAYMARK_POOL_MAX_SIZE": 4,
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    """The stand-alone Waymark app on the test's own database."""
    application = create_app(app_config)
    yield application
    application.extensions["waymark"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class AuthTokens:
    """Mints Supabase-style access tokens for each kind of caller."""

    def __init__(self, secret: str = TEST_JWT_SECRET) -> None:
        self.secret = secret

    def claims(self, user_id: str | uuid.UUID, role: str | None = "student",
               **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": now + 3600,
            "app_metadata": {"role": role} if role else {},
            "user_metadata": {},
        }
        claims.update(extra)
        return claims

    def token(self, user_id: str | uuid.UUID, role: str | None = "student", **extra: Any) -> str:
        return jwt.encode(self.claims(user_id, role, **extra), self.secret, algorithm="HS256")

    def header(self, user_id: str | uuid.UUID, role: str | None = "student",
               **extra: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, role, **extra)}"}


@pytest.fixture
def auth() -> AuthTokens:
    return AuthTokens()
