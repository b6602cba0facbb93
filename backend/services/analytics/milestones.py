"""Milestones in ``learning_journey_events``, and the students the daily jobs cover.

Milestones: ``quest_completed`` and ``badge_earned`` (one per source event, keyed
``<type>:<event_id>``) and ``streak_reached`` when a run of consecutive active UTC days
reaches one of ``STREAK_THRESHOLDS`` (keyed ``streak:<user>:<first day>:<days>``, dated
00:00 UTC of the day it was reached), so a journey can be told without re-reading every
event. The runs are the package's one definition of a streak (``streak_runs`` in
``queries.sql``), the students its one definition of a student (``students``). Every
write follows the forget contract (docs/privacy.md, "Forget"): the shared forget lock
first (``waymark.lock_forget_shared()``), forgotten users filtered out
(``waymark.is_forgotten``). The risk assessments stored in the same table are
``risk/storage.py``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from backend.services.analytics import QUERIES
from backend.services.analytics.window import ACTIVITY_PARAMS, history_since

STREAK_THRESHOLDS = (3, 7, 14, 30, 60, 100, 365)


def student_ids(conn: psycopg.Connection[Any], *, now: datetime,
                history_days: int) -> list[uuid.UUID]:
    """Everyone the milestone and score jobs cover, in a stable order for batching."""
    return [row[0] for row in conn.execute(
        QUERIES["student_ids"],
        {"now": now, "history_since": history_since(now, history_days),
         **ACTIVITY_PARAMS}).fetchall()]


def write_milestones(conn: psycopg.Connection[Any], user_ids: Sequence[uuid.UUID], *,
                     now: datetime, history_days: int) -> int:
    """Add the missing milestones of these users (one transaction); returns rows added."""
    params = {"user_ids": list(user_ids), "now": now, "thresholds": list(STREAK_THRESHOLDS),
              "history_since": history_since(now, history_days)}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(QUERIES["lock_forget_shared"])
        cur.execute(QUERIES["event_milestones"], params)
        added = cur.rowcount
        cur.execute(QUERIES["streak_milestones"], params)
        return added + cur.rowcount
