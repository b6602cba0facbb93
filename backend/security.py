"""Start-up check of the database role Waymark connects as.

Row-level security protects learners' data only if the roles are right: the service
connection should be an owner role with BYPASSRLS (for the writer and jobs) but not a
superuser in production, and the API role ``authenticated`` must never bypass RLS.
The check runs once, off the start-up path (a host app must start even when its
analytics database is down), and only logs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from backend.db import Database, DatabaseUnavailable
from backend.queries import FOUNDATION

log = logging.getLogger("waymark.security")

ROLE_CHECK = FOUNDATION["role_check"]

SUPERUSER_WARNING = (
    "waymark: the database connection uses the superuser {name!r}. Outside tests, connect "
    "as an owner role without SUPERUSER (with BYPASSRLS for the writer and jobs); "
    "see docs/access.md"
)
AUTHENTICATED_BYPASS_ERROR = (
    "waymark: the role 'authenticated' bypasses row-level security, so every signed-in "
    "user can read every row. Run: ALTER ROLE authenticated NOBYPASSRLS NOSUPERUSER"
)


@dataclass(frozen=True)
class RoleReport:
    """What the connecting role may do, as far as row-level security is concerned."""

    name: str
    superuser: bool
    bypass_rls: bool
    authenticated_bypasses: bool


def connection_role(db: Database, timeout: float = 10.0) -> RoleReport:
    """Ask the server who Waymark's service connection is and what it may bypass."""
    with db.connection(timeout=timeout) as conn:
        row = conn.execute(ROLE_CHECK).fetchone()
    assert row is not None  # current_user always has a pg_roles row
    return RoleReport(name=row[0], superuser=row[1], bypass_rls=row[2],
                      authenticated_bypasses=row[3])


def role_problems(report: RoleReport, *, testing: bool) -> list[str]:
    """The warnings a deployment with this role deserves (a superuser is fine in tests)."""
    problems: list[str] = []
    if report.superuser and not testing:
        problems.append(SUPERUSER_WARNING.format(name=report.name))
    if report.authenticated_bypasses:
        problems.append(AUTHENTICATED_BYPASS_ERROR)
    return problems


def check_connection_role(db: Database, *, testing: bool, timeout: float = 10.0) -> list[str]:
    """Check the role once and log every problem found; returns them (empty when fine)."""
    try:
        report = connection_role(db, timeout=timeout)
    except DatabaseUnavailable as exc:
        log.info("waymark: role check skipped, database unavailable: %s", exc)
        return []
    problems = role_problems(report, testing=testing)
    for problem in problems:
        log.warning(problem)
    return problems


def check_connection_role_soon(db: Database, *, testing: bool) -> threading.Thread | None:
    """Run :func:`check_connection_role` in a daemon thread so start-up never waits on it."""
    if testing:
        return None
    thread = threading.Thread(target=check_connection_role, args=(db,),
                              kwargs={"testing": testing}, name="waymark-role-check",
                              daemon=True)
    thread.start()
    return thread
