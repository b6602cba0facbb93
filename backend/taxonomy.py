"""The event taxonomy (docs/analytics.md) and the definitions every part shares.

Which category each known event type belongs to, and how long a pause ends a session:
the writer's stored sessions, the analytics' recomputed ones and the risk score read the
same constant.
"""

from __future__ import annotations

import re
from datetime import timedelta

#: A session is one person's run of events with no pause longer than this.
SESSION_GAP = timedelta(minutes=30)

EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")

TAXONOMY: dict[str, tuple[str, ...]] = {
    "navigation": ("page_view", "route_change", "page_exit"),
    # quest_assigned (a quest given to a student, with event_data.due_at) extends the seed taxonomy:
    # the risk score's missed-deadlines factor reads it; it is not learner activity.
    "quest": ("quest_viewed", "quest_started", "quest_abandoned", "quest_completed",
              "task_viewed", "task_completed", "evidence_uploaded", "quest_assigned"),
    "badge": ("badge_viewed", "badge_claimed", "badge_earned"),
    "tutor": ("tutor_opened", "tutor_message_sent", "tutor_safety_flag"),
    "community": ("connection_request_sent", "connection_accepted", "profile_viewed"),
    "auth": ("login_success", "login_failed", "logout", "session_expired"),
    "parent": ("parent_dashboard_opened", "parent_evidence_uploaded"),
    "error": ("javascript_error", "api_error", "network_error"),
    "acquisition": ("landing_visit", "conversion"),
}

CATEGORY_OF: dict[str, str] = {
    event_type: category for category, types in TAXONOMY.items() for event_type in types
}
CATEGORIES: tuple[str, ...] = (*TAXONOMY, "custom")
ERROR_TYPES: tuple[str, ...] = TAXONOMY["error"]


def category_of(event_type: str) -> str:
    """The category of an event type; unknown (custom) types land in ``custom``."""
    return CATEGORY_OF.get(event_type, "custom")


#: Event types the host app records when a student's course ends: withdrawn (the outcome
#: `waymark risk-calibrate` and `risk-backtest` predict by default) or completed. From the
#: latest of them on, a student has left: not scored, not listed at risk, not alerted
#: about, until they are active again (docs/risk.md, "Who is scored").
LEAVING_TYPES: tuple[str, ...] = ("course_withdrawn", "course_completed")

#: Event types the app records *for* a student (work assigned to them, their course
#: ending); they do not show the student active: last activity, inactivity, active days,
#: sessions and streaks leave them out.
NON_ACTIVITY_TYPES: tuple[str, ...] = ("quest_assigned", *LEAVING_TYPES)
