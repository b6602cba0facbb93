"""Rows of ``learning_journey_events``: milestones and stored risk assessments.

Milestones: ``quest_completed`` and ``badge_earned`` (one per source event, keyed
``<type>:<event_id>``) and ``streak_reached`` when a run of consecutive active UTC days
reaches one of ``STREAK_THRESHOLDS`` (keyed ``streak:<user>:<first day>:<days>``, dated
00:00 UTC of the day it was reached). Risk assessments: ``risk_assessment`` with score,
level and factors, one per student and UTC day (``score:<user>:<day>``; a second run
the same day refreshes it). Every write follows the forget contract
(``backend/services/tombstones.py``): shared forget lock, tombstoned users filtered out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.services.analytics.risk import DEFAULT_PARAMS, RiskAssessment, RiskParams
from backend.services.privacy.tombstones import LOCK_SHARED, NOT_FORGOTTEN

STREAK_THRESHOLDS = (3, 7, 14, 30, 60, 100, 365)

#: Users with events at or before ``now`` who are not parents (those the jobs cover).
STUDENT_IDS_SQL = """
SELECT e.user_id FROM public.user_activity_events e
WHERE e.user_id IS NOT NULL AND e.occurred_at <= %(now)s
  AND NOT EXISTS (SELECT 1 FROM public.guardian_links g WHERE g.parent_id = e.user_id)
GROUP BY e.user_id ORDER BY e.user_id
"""

EVENT_MILESTONES_SQL = """
INSERT INTO public.learning_journey_events (user_id, occurred_at, milestone, details, dedupe_key)
SELECT s.user_id, s.occurred_at, s.event_type,
       jsonb_strip_nulls(jsonb_build_object(
           'event_id', s.event_id, 'quest_id', s.event_data -> 'quest_id',
           'quest_title', s.event_data -> 'quest_title', 'pillar', s.event_data -> 'pillar',
           'xp', s.event_data -> 'xp', 'badge_id', s.event_data -> 'badge_id')),
       s.event_type || ':' || s.event_id
FROM public.user_activity_events s
WHERE s.user_id = ANY (%(user_ids)s::uuid[])
  AND s.event_type IN ('quest_completed', 'badge_earned')
  AND s.occurred_at <= %(now)s
  AND """ + NOT_FORGOTTEN + """
ON CONFLICT (dedupe_key) DO NOTHING
"""  # noqa: S608 - constant SQL fragments only

STREAK_MILESTONES_SQL = """
WITH days AS (
    SELECT DISTINCT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM public.user_activity_events
    WHERE user_id = ANY (%(user_ids)s::uuid[]) AND occurred_at <= %(now)s
), runs AS (
    SELECT user_id, min(day) AS first_day, count(*) AS length
    FROM (SELECT user_id, day,
                 day - (row_number() OVER (PARTITION BY user_id ORDER BY day))::int AS island
          FROM days) d
    GROUP BY user_id, island
)
INSERT INTO public.learning_journey_events (user_id, occurred_at, milestone, details, dedupe_key)
SELECT s.user_id, ((s.first_day + t.days - 1)::timestamp AT TIME ZONE 'UTC'), 'streak_reached',
       jsonb_build_object('days', t.days, 'streak_started', s.first_day),
       'streak:' || s.user_id || ':' || s.first_day || ':' || t.days
FROM runs s CROSS JOIN unnest(%(thresholds)s::int[]) AS t(days)
WHERE s.length >= t.days AND """ + NOT_FORGOTTEN + """
ON CONFLICT (dedupe_key) DO NOTHING
"""  # noqa: S608 - constant SQL fragments only

STORE_ASSESSMENTS_SQL = """
INSERT INTO public.learning_journey_events (
    user_id, occurred_at, milestone, risk_score, engagement_level, details, dedupe_key,
    params_key)
SELECT s.user_id, %(now)s, 'risk_assessment', s.score, s.level, s.details::jsonb,
       'score:' || s.user_id || ':' || %(day)s,
       waymark.risk_params_key(s.details::jsonb -> 'params')
FROM unnest(%(user_ids)s::uuid[], %(scores)s::float8[], %(levels)s::text[],
            %(details)s::text[]) AS s(user_id, score, level, details)
WHERE """ + NOT_FORGOTTEN + """
ON CONFLICT (dedupe_key) DO UPDATE
   SET occurred_at = EXCLUDED.occurred_at, risk_score = EXCLUDED.risk_score,
       engagement_level = EXCLUDED.engagement_level, details = EXCLUDED.details,
       params_key = EXCLUDED.params_key
"""  # noqa: S608 - constant SQL fragments only


def student_ids(conn: psycopg.Connection[Any], *, now: datetime) -> list[uuid.UUID]:
    """Everyone the milestone and score jobs cover, in a stable order for batching."""
    return [row[0] for row in conn.execute(STUDENT_IDS_SQL, {"now": now}).fetchall()]


def write_milestones(conn: psycopg.Connection[Any], user_ids: Sequence[uuid.UUID], *,
                     now: datetime) -> int:
    """Add the missing milestones of these users (one transaction); returns rows added."""
    params = {"user_ids": list(user_ids), "now": now, "thresholds": list(STREAK_THRESHOLDS)}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(LOCK_SHARED)
        cur.execute(EVENT_MILESTONES_SQL, params)
        added = cur.rowcount
        cur.execute(STREAK_MILESTONES_SQL, params)
        return added + cur.rowcount


def store_assessments(conn: psycopg.Connection[Any], assessments: Sequence[RiskAssessment], *,
                      now: datetime, params: RiskParams = DEFAULT_PARAMS) -> int:
    """Write (or refresh today's) risk assessment rows; returns rows written.

    ``details`` holds the score, level, factors and the parameters they were made with;
    ``params_key`` a key of those parameters (migration 0070), which at-risk-students
    looks today's assessments up by.
    """
    if not assessments:
        return 0
    now = now.astimezone(UTC)
    bound = {
        "now": now, "day": now.date().isoformat(),
        "user_ids": [a.user_id for a in assessments],
        "scores": [a.score for a in assessments],
        "levels": [a.level for a in assessments],
        "details": [json.dumps(_details(a, params)) for a in assessments],
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(LOCK_SHARED)
        cur.execute(STORE_ASSESSMENTS_SQL, bound)
        return cur.rowcount


def _details(assessment: RiskAssessment, params: RiskParams) -> dict[str, Any]:
    data = assessment.as_dict()
    return {"score": data["score"], "level": data["level"], "factors": data["factors"],
            "params": params.as_dict()}
