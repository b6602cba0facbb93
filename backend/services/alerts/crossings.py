"""Find students whose stored risk crossed the alert threshold and plan who is told.

Runs on the service connection after `waymark score`. Detection and planning share one
transaction: a crossing row and its delivery rows appear together or not at all, and the
crossing's unique key (student, direction, assessment day) makes every re-run and every
concurrent run a no-op for crossings already found.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.config import AlertSettings
from backend.services.alerts import QUERIES

LOOKBACK = timedelta(days=7)


def find_and_plan(conn: psycopg.Connection[Any], settings: AlertSettings, *,
                  now: datetime) -> tuple[int, int]:
    """Record new crossings and their pending deliveries; returns (crossings, deliveries)."""
    with conn.transaction():
        rows = conn.execute(QUERIES["insert_crossings"], {
            "now": now, "since": now - LOOKBACK, "threshold": settings.threshold}).fetchall()
        crossing_ids = [row[0] for row in rows]
        if not crossing_ids:
            return 0, 0
        planned = conn.execute(QUERIES["plan_deliveries"], {
            "crossing_ids": crossing_ids, "admins": [uuid.UUID(a) for a in settings.admins],
            "email": settings.smtp_url is not None,
            "webhook": settings.webhook_url is not None}).rowcount
    return len(crossing_ids), planned
