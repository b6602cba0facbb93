"""The salt of each period: random, shared by every instance through ``tracking_salts``.

Every process asks the database for the current period's salt and creates it on
demand with ``INSERT … ON CONFLICT DO NOTHING`` so all instances agree on one salt.
Rotation (deleting salts whose period is over) is the ``rotate-salts`` job's work.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.services.privacy import QUERIES

SALT_BYTES = 32

GET_OR_CREATE_SALT = QUERIES["get_or_create_salt"]


SELECT_SALT = QUERIES["select_salt"]

AUDIT_SALT_CREATED = QUERIES["audit_salt_created"]


def period_start(now: datetime, period: str) -> datetime:
    """The UTC start of the salt period containing ``now`` (``day`` or ``month``)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"salt period must be 'day' or 'month', not {period!r}")


def next_period_start(start: datetime, period: str) -> datetime:
    """The start of the period after the one beginning at ``start``."""
    if period == "month":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start.replace(year=year, month=month)
    return start + timedelta(days=1)


def get_or_create_salt(conn: psycopg.Connection[Any], start: datetime) -> tuple[bytes, bool]:
    """The salt for the period starting at ``start``, creating it if no instance has yet.

    Returns ``(salt, created)``; ``created`` tells the caller to write an audit row.
    """
    with conn.cursor() as cur:
        cur.execute(GET_OR_CREATE_SALT,
                    {"period_start": start, "salt": secrets.token_bytes(SALT_BYTES)})
        row = cur.fetchone()
        if row is None:
            # Another instance inserted it after this statement's snapshot was taken:
            # its row is committed now, so a fresh statement sees it.
            cur.execute(SELECT_SALT, {"period_start": start})
            row = cur.fetchone()
        if row is None:
            raise RuntimeError(f"no salt could be created for the period {start.isoformat()}")
        created = bool(row[1])
        if created:
            cur.execute(AUDIT_SALT_CREATED, {"period_start": start})
    return bytes(row[0]), created
