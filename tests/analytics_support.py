"""Helpers for the analytics tests: insert events and errors with plain SQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg

from backend.config import Settings
from backend.taxonomy import category_of

EVENT_COLUMNS = ("user_id", "visitor_hash", "network_hash", "session_id", "page_path",
                 "referrer", "utm_source", "utm_medium", "utm_campaign", "duration_ms",
                 "load_time_ms", "status_code", "source", "device_type")


def add_event(conn: psycopg.Connection[Any], event_type: str, at: datetime, *,
              data: dict[str, Any] | None = None, **columns: Any) -> uuid.UUID:
    """Insert one event (columns by name) and return its id."""
    unknown = set(columns) - set(EVENT_COLUMNS)
    assert not unknown, f"unknown columns {unknown}"
    event_id = uuid.uuid4()
    names = ["event_id", "event_type", "event_category", "occurred_at", "event_data", *columns]
    values = [event_id, event_type, category_of(event_type), at, json.dumps(data or {}),
              *columns.values()]
    placeholders = ", ".join(["%s"] * len(values))
    conn.execute(f"INSERT INTO user_activity_events ({', '.join(names)}) "  # noqa: S608
                 f"VALUES ({placeholders})", values)
    return event_id


def add_error(conn: psycopg.Connection[Any], error_type: str, at: datetime, *,
              fingerprint: str, message: str = "boom", user_id: uuid.UUID | None = None,
              **columns: Any) -> uuid.UUID:
    """Insert one error event in its group (created on first use) and return its id."""
    row = conn.execute(
        "INSERT INTO error_groups (fingerprint, error_type, message, first_seen, last_seen) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE "
        "SET last_seen = greatest(error_groups.last_seen, EXCLUDED.last_seen), "
        "occurrences = error_groups.occurrences + 1 RETURNING group_id",
        (fingerprint, error_type, message, at, at)).fetchone()
    assert row is not None
    error_id = uuid.uuid4()
    names = ["error_id", "error_type", "occurred_at", "fingerprint", "group_id", "message",
             "user_id", *columns]
    values = [error_id, error_type, at, fingerprint, row[0], message, user_id, *columns.values()]
    placeholders = ", ".join(["%s"] * len(values))
    conn.execute(f"INSERT INTO error_events ({', '.join(names)}) "  # noqa: S608
                 f"VALUES ({placeholders})", values)
    return error_id

#: How far back the tests read a person's history: what a deployment reads by default
#: (WAYMARK_ANONYMIZE_AFTER_DAYS). The services take it without a default on purpose.
HISTORY_DAYS = Settings.anonymize_after_days
