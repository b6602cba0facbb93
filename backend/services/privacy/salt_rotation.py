"""Salt rotation: make sure the current period has a salt, destroy the ones that are over.

Which salts survive a run at time ``now`` (period = day or month, UTC):

* the salt of the current period (created here if no process has created it yet);
* the salt of the previous period, only while ``now`` is less than
  ``PREVIOUS_SALT_GRACE`` (1 hour) past the boundary — long enough for sessions that
  straddle midnight and for events queued just before it; with the cron at 00:05 and
  01:05 UTC a daily salt lives about 25 hours, never more than 48;
* salts of future periods (clock skew between instances) are left alone.

Everything else is hard-deleted, one ``salt_destroyed`` audit row per period (the period
only, never key material), then — at every run — the table is rewritten with
``VACUUM FULL`` so the key does not linger in a dead tuple (falling back to a plain
``VACUUM`` if the rewrite cannot get its lock quickly). PostgreSQL must keep a deleted
row version while any transaction that could still see it is running; the run reports
such ``lingering`` rows, and the next run (an hour later) removes them. Once a period's
salt is gone nobody can recompute or link that period's visitor or network hashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import Database
from backend.services.privacy import QUERIES
from backend.services.privacy.salts import get_or_create_salt, period_start

PREVIOUS_SALT_GRACE = timedelta(hours=1)

DELETE_EXPIRED_SALTS = QUERIES["delete_expired_salts"]

AUDIT_SALT_DESTROYED = QUERIES["audit_salt_destroyed"]

SET_VACUUM_LOCK_TIMEOUT = QUERIES["set_vacuum_lock_timeout"]
VACUUM_FULL_SALTS = QUERIES["vacuum_full_salts"]
VACUUM_SALTS = QUERIES["vacuum_salts"]
_CANNOT_REMOVE = re.compile(
    r"(\d+) (?:dead row versions cannot be removed yet|are dead but not yet removable)")


@dataclass(frozen=True)
class RotationResult:
    """What one rotation did: periods created and destroyed, and how it vacuumed."""

    current_period: datetime
    created: bool
    destroyed: list[datetime] = field(default_factory=list)
    kept: list[datetime] = field(default_factory=list)
    vacuum: str = "none"
    lingering_dead_rows: int = 0


def keep_from(now: datetime, period: str) -> datetime:
    """The oldest period start whose salt may still exist at ``now``."""
    current = period_start(now, period)
    if now - current < PREVIOUS_SALT_GRACE:
        return period_start(current - timedelta(microseconds=1), period)
    return current


def rotate_salts(db: Database, *, now: datetime, period: str) -> RotationResult:
    """Create the current salt if missing, destroy expired ones, then vacuum them away."""
    current = period_start(now, period)
    with db.connection() as conn:
        _, created = get_or_create_salt(conn, current)
        destroyed = _destroy_expired(conn, keep_from(now, period))
        rows = conn.execute(
            "SELECT period_start FROM public.tracking_salts ORDER BY period_start").fetchall()
    vacuum, lingering = vacuum_salts(db.url)
    return RotationResult(current_period=current, created=created, destroyed=destroyed,
                          kept=[row[0] for row in rows], vacuum=vacuum,
                          lingering_dead_rows=lingering)


def _destroy_expired(conn: psycopg.Connection[Any], oldest_kept: datetime) -> list[datetime]:
    with conn.cursor() as cur:
        cur.execute(DELETE_EXPIRED_SALTS, {"keep_from": oldest_kept})
        destroyed = sorted(row[0] for row in cur.fetchall())
        for start in destroyed:
            cur.execute(AUDIT_SALT_DESTROYED, {"period_start": start})
    return destroyed


def vacuum_salts(url: str) -> tuple[str, int]:
    """Rewrite the salts table so deleted keys leave no dead tuple.

    Returns how it vacuumed and how many dead row versions it had to keep because a
    transaction that might still see them was running (they go at the next run).
    VACUUM cannot run in a transaction, hence a separate autocommit connection.
    """
    lingering: list[int] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        match = _CANNOT_REMOVE.search(f"{diag.message_primary} {diag.message_detail}")
        if match:
            lingering.append(int(match.group(1)))

    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.add_notice_handler(on_notice)
        conn.execute(SET_VACUUM_LOCK_TIMEOUT)
        try:
            conn.execute(VACUUM_FULL_SALTS)
            mode = "full"
        except psycopg.errors.LockNotAvailable:
            conn.execute(VACUUM_SALTS)
            mode = "plain"
    return mode, sum(lingering)
