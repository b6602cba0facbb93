"""Ordered, recorded, idempotent migrations from ``sql/NNNN_name.sql``, then repeatable files.

Each ordered file runs in its own transaction and is recorded in ``waymark.schema_migrations``
with its checksum; a session-level advisory lock makes two concurrent ``waymark migrate``
runs take turns, so the second one finds nothing left to do.

Functions are definitions, not history: each has one file in ``sql/functions/`` holding its
current definition (``CREATE OR REPLACE`` plus its grants). After the ordered migrations,
every such file whose checksum differs from the one recorded in
``waymark.schema_repeatables`` is applied and recorded — on a new database all of them, on
an existing one those that changed. Ordered files that once created a function stay
byte-identical (their checksums are recorded in existing databases); they are history, and
the repeatable file, applied last, is what the database ends with. A change of a
function's arguments or return type needs a DROP in an ordered migration first.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from backend.clock import MAX_PAST
from backend.queries import FOUNDATION

log = logging.getLogger("waymark.migrations")

#: ``backend/sql`` links to the top-level ``sql/``, so an installed package carries them too.
SQL_DIR = Path(__file__).resolve().parent / "sql"
MIGRATION_LOCK_KEY = 0x57A1_0001  # arbitrary, constant: "waymark migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
REPEATABLE_DIR = "functions"
#: after migrating, the events table has a partition for each week from the oldest day
#: ingestion accepts (MAX_PAST: late events) to two weeks ahead (the week after an
#: in-place migration's cut-over, sql/0150, is at most 8 days ahead); `waymark rollup` and
#: `waymark partitions` keep the window moving.
PARTITION_DAYS_BACK = MAX_PAST.days
PARTITION_DAYS_AHEAD = 14


class MigrationError(RuntimeError):
    """A migration failed or an applied one was edited afterwards."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """All migration files in version order; a malformed or duplicate name is an error."""
    found: dict[str, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            continue
        version = match.group(1)
        if version in found:
            raise MigrationError(f"two migrations share version {version}: "
                                 f"{found[version].path.name} and {path.name}")
        found[version] = Migration(version, path.stem, path)
    return [found[v] for v in sorted(found)]


def migrate(url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute(FOUNDATION["migrations_lock"], {"key": MIGRATION_LOCK_KEY})
        try:
            _bootstrap(conn)
            done = _applied(conn)
            for migration in discover(sql_dir):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        log.warning("migration %s changed after it was applied; "
                                    "add a new migration instead of editing it", migration.name)
                    continue
                _apply(conn, migration)
                applied_now.append(migration.name)
            applied_now += _apply_repeatables(conn, sql_dir)
            ensure_event_partitions(conn)
        finally:
            conn.execute(FOUNDATION["migrations_unlock"], {"key": MIGRATION_LOCK_KEY})
    return applied_now


def ensure_event_partitions(conn: psycopg.Connection[Any], *, back: int = PARTITION_DAYS_BACK,
                            ahead: int = PARTITION_DAYS_AHEAD) -> int:
    """Make the missing week partitions of the events table (none before sql/0152)."""
    row = conn.execute(FOUNDATION["event_partitioning_exists"]).fetchone()
    if not (row and row[0]):
        return 0
    with conn.transaction():
        made = conn.execute(FOUNDATION["ensure_event_partitions"],
                            {"back": back, "ahead": ahead}).fetchone()
    return int(made[0]) if made else 0


def pending(url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Names of migrations not yet applied to the database at ``url``."""
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        return SchemaTarget.from_files(sql_dir).missing(conn)


@dataclass(frozen=True)
class SchemaTarget:
    """The schema this version of Waymark expects: its ordered migrations and the checksum of
    each function file.

    A running app reads the files once (they do not change under a running process), so
    asking a database how far behind it is costs two small queries: cheap enough for every
    ``/health`` and for the moment a request finds a table missing.
    """

    ordered: tuple[tuple[str, str], ...]  # (version, name)
    repeatables: tuple[tuple[str, str], ...]  # (name, checksum)

    @classmethod
    def from_files(cls, sql_dir: Path = SQL_DIR) -> SchemaTarget:
        return cls(tuple((m.version, m.name) for m in discover(sql_dir)),
                   tuple((r.name, r.checksum) for r in discover_repeatables(sql_dir)))

    def missing(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Names of the migrations and function files ``conn``'s database has not applied
        (in the order ``waymark migrate`` would apply them); empty when up to date."""
        row = conn.execute(FOUNDATION["migrations_table_exists"]).fetchone()
        done = _applied(conn) if row and row[0] else {}
        recorded = _recorded_repeatables(conn)
        return ([name for version, name in self.ordered if version not in done]
                + [name for name, checksum in self.repeatables
                   if recorded.get(name) != checksum])


def _bootstrap(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        exists = conn.execute(FOUNDATION["migrations_table_exists"]).fetchone()
        if not (exists and exists[0]):
            conn.execute(FOUNDATION["migrations_bootstrap"])


def _applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(FOUNDATION["migrations_applied"]).fetchall()
    return {version: checksum for version, checksum in rows}


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    log.info("applying migration %s", migration.name)
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode("utf-8"))
            conn.execute(FOUNDATION["migrations_record"], {"version": migration.version,
                                                         "name": migration.name,
                                                         "checksum": migration.checksum})
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc


def discover_repeatables(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The repeatable files (``sql/functions/*.sql``), in name order."""
    return [Migration("", f"{REPEATABLE_DIR}/{path.stem}", path)
            for path in sorted((sql_dir / REPEATABLE_DIR).glob("*.sql"))]


def _recorded_repeatables(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Each applied function file's checksum (none before the first ``waymark migrate``)."""
    exists = conn.execute(FOUNDATION["repeatables_table_exists"]).fetchone()
    if not (exists and exists[0]):
        return {}
    return dict(conn.execute(FOUNDATION["repeatables_applied"]).fetchall())


def _changed_repeatables(conn: psycopg.Connection[Any], sql_dir: Path) -> list[Migration]:
    recorded = _recorded_repeatables(conn)
    return [r for r in discover_repeatables(sql_dir) if recorded.get(r.name) != r.checksum]


def _apply_repeatables(conn: psycopg.Connection[Any], sql_dir: Path) -> list[str]:
    """Apply (and record) every repeatable file that is new or changed since it was applied."""
    conn.execute(FOUNDATION["repeatables_table"])
    applied: list[str] = []
    for repeatable in _changed_repeatables(conn, sql_dir):
        log.info("applying repeatable %s", repeatable.name)
        try:
            with conn.transaction():
                conn.execute(repeatable.sql.encode("utf-8"))
                conn.execute(FOUNDATION["repeatables_record"],
                             {"name": repeatable.name, "checksum": repeatable.checksum})
        except psycopg.Error as exc:
            raise MigrationError(f"repeatable {repeatable.name} failed: {exc}") from exc
        applied.append(repeatable.name)
    return applied
