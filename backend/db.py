"""The one place that owns psycopg: the connection pool, the embedded server, identity.

Routes never import psycopg errors; they see :class:`DatabaseUnavailable` from here. Connections are made without server-side
prepared statements so that Supabase's transaction-mode pooler works.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.config import Settings

log = logging.getLogger("waymark.db")

Params = Sequence[Any] | Mapping[str, Any] | None
Row = dict[str, Any]

#: Errors that mean "the server is gone or going", worth retrying later.
TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53")
TRANSIENT_SQLSTATES = ("40001", "40P01")


SET_IDENTITY = "SELECT set_config('request.jwt.claims', %s, true), set_config('role', %s, true)"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached right now; retrying later may succeed."""


#: What PostgreSQL raises when a statement names a table, column, function, type or schema
#: the database does not have: after an upgrade whose `waymark migrate` has not run yet
#: (routes then answer 503 and say so), or a bug in our SQL (a 500).
MISSING_SCHEMA_ERRORS: tuple[type[psycopg.Error], ...] = (
    psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedObject,
    psycopg.errors.InvalidSchemaName)



def fault_of(exc: BaseException) -> str:
    """What a writer's log line calls a failure that retrying soon will not cure: a missing
    table or function is most often an upgrade whose migrations have not run, anything
    else a bug in our code (a data error never reaches the writers' retry loops)."""
    if isinstance(exc, MISSING_SCHEMA_ERRORS):
        return "a table or function is missing (has `waymark migrate` run for this version?)"
    return "a bug"


def rerouted(exc: BaseException) -> bool:
    """Whether a row was refused by a *partition's* constraint: routed to a partition (the
    events' default one) while the partitions changed under it — a week partition attached
    by `waymark migrate` or `waymark partitions` as the row was copied. Not the row's fault:
    routed again, it lands in the new partition. PostgreSQL names the constraint of every
    CHECK or domain violation, never a partition's, which tells the two apart in any
    server language."""
    return (isinstance(exc, psycopg.Error) and exc.sqlstate == "23514"
            and exc.diag.constraint_name is None)


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth a retry (connection lost, shutdown, serialization, a row
    routed while the partitions changed)."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout | psycopg.OperationalError):
        return True
    if rerouted(exc):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:
        return False
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir`` and return its URL.

    pgserver keeps one server per data directory and stops it when the last process
    that asked for it exits, so a CLI job run beside ``waymark serve`` shares it.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, cron); harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # only an unconfigured install loads it (and its binaries)

        data_dir = data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return uri


def resolve_database_url(settings: Settings) -> str:
    """The configured server, or the embedded PostgreSQL when none is configured."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET application_name = 'waymark'")
    # No JIT: our statements name the week-partitioned events table, so one plan can hold
    # hundreds of partition scans, and compiling them all costs seconds where running them
    # costs milliseconds (the score job's inputs at 1M events: 19 of 20 s were JIT).
    conn.execute("SET jit = off")
    conn.commit()


class Database:
    """A pool of connections plus the helpers services use: execute, fetch, as_user."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 name: str = "waymark") -> None:
        self.url = url
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name=name,
            configure=_configure,
            kwargs={"prepare_threshold": None, "connect_timeout": 5},
            timeout=10,
            reconnect_timeout=60,
        )

    def open(self, *, wait: bool = False, timeout: float = 10.0) -> None:
        """Open the pool; with ``wait`` fail fast when the server is unreachable."""
        try:
            self.pool.open(wait=wait, timeout=timeout)
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc

    def close(self, timeout: float = 5.0) -> None:
        """Close every pooled connection."""
        self.pool.close(timeout=timeout)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection; the block runs in a transaction committed at its end."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    @contextmanager
    def as_user(self, claims: Mapping[str, Any] | None) -> Iterator[psycopg.Connection[Any]]:
        """Run a block as the caller so that RLS policies, not this code, choose the rows.

        ``claims`` are the verified JWT claims (None: an anonymous caller). Identity is set
        with ``SET LOCAL``/``set_config(..., true)`` inside one transaction, so it ends with
        the transaction and a pooled connection never carries it into the next use.
        """
        role = "authenticated" if claims else "anon"
        payload = json.dumps(dict(claims) if claims else {"role": "anon"}, default=str)
        with self.connection() as conn:
            with conn.transaction():
                # One round trip, as PostgREST does it: set_config('role', …, true) is
                # SET LOCAL ROLE, and both settings end with the transaction.
                conn.execute(SET_IDENTITY, (payload, role))
                yield conn

    def execute(self, query: str, params: Params = None) -> int:
        """Run one statement with the service connection; returns the affected row count."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.rowcount

    def fetch_one(self, query: str, params: Params = None) -> Row | None:
        """Run a query with the service connection and return its first row as a dict."""
        with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchone()

    def fetch_all(self, query: str, params: Params = None) -> list[Row]:
        """Run a query with the service connection and return all rows as dicts."""
        with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a trivial query within ``timeout`` seconds."""
        try:
            with self.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return True
        except (DatabaseUnavailable, psycopg.Error):
            return False


def fetch_all(conn: psycopg.Connection[Any], query: str, params: Params = None) -> list[Row]:
    """Run a query on a connection the caller holds (e.g. one from ``as_user``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def fetch_one(conn: psycopg.Connection[Any], query: str, params: Params = None) -> Row | None:
    """Run a query on a held connection and return its first row, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def unstorable(text: str) -> str | None:
    """Why PostgreSQL's ``text`` cannot hold ``text`` (a NUL, a lone surrogate), else None.

    Every field a client sends that reaches a text column is checked with this first, so
    such input is a 400 naming the field rather than a driver error (a 500) at insert time.
    """
    if "\x00" in text:
        return "contains \\u0000, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which cannot be stored"
    return None
