"""The analytics endpoints (docs/analytics.md): parse and check, run the service as the caller.

Every query runs inside ``state.reads.as_user(caller.claims)`` (a streaming replica when
WAYMARK_READ_DATABASE_URL is set, else the primary) so row-level security
chooses the rows; the web layer also refuses (403, no data) what the caller may not
see: admin-only endpoints, and another user's engagement or journey unless the caller
is that user, their linked parent or an admin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from backend.auth import current_caller, require_access_to, require_caller
from backend.routes import errors as shared_answers
from backend.routes import tables
from backend.routes.params import (
    AT_RISK_LIMIT_RANGE,
    DAYS_RANGE,
    LIMIT_RANGE,
    THRESHOLD_RANGE,
    bool_arg,
    float_arg,
    int_arg,
    uuid_arg,
)
from backend.services.analytics import risk
from backend.services.analytics.at_risk import at_risk_students as flag_students
from backend.services.analytics.attribution import attribution as attribution_summary
from backend.services.analytics.engagement import engagement as engagement_of
from backend.services.analytics.errors import error_summary
from backend.services.analytics.event_counts import event_counts as counts_by_category
from backend.services.analytics.event_counts import visible_students
from backend.services.analytics.journey import journey as journey_of
from backend.services.analytics.overview import (
    activity_over_time,
    live_events,
    recent_activity,
    referrer_sources,
    risk_distribution,
)
from backend.services.analytics.pages import page_views as page_view_summary
from backend.services.analytics.quests import popular_quests as quest_popularity
from backend.state import get_state

bp = Blueprint("waymark_analytics", __name__, url_prefix="/api/analytics")
shared_answers.install(bp)


def _days(default: int = 30) -> int:
    return int_arg(request.args, "days", default, DAYS_RANGE)


def _risk_params() -> risk.RiskParams:
    """Risk parameters from the app's ``WAYMARK_RISK_*`` settings (defaults otherwise)."""
    return get_state().risk_params


def _history_days() -> int:
    """How far back a person's history is read: the anonymization age (docs/analytics.md)."""
    return get_state().settings.anonymize_after_days


def _as_caller(work: Callable[[Any], dict[str, Any]],
               table: tuple[str, str] | None = None) -> ResponseReturnValue:
    """Run ``work(conn)`` on a connection carrying the caller's identity; answer JSON, or
    with ``table=(list key, file name)`` that list as CSV when ``?format=csv`` asks."""
    caller = current_caller()
    if table is not None:
        tables.wants_csv()  # a bad format is a 400 before any query runs
    with get_state().reads.as_user(caller.claims) as conn:
        body = work(conn)
    if table is not None:
        return tables.answer(body, *table)
    response = jsonify(body)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/engagement/<user_id>")
@require_caller()
def engagement(user_id: str) -> ResponseReturnValue:
    """Activity, sessions, streaks and risk with its factors (self, linked parent or admin)."""
    target = uuid_arg(user_id)
    days = _days()
    require_access_to(target)
    now = datetime.now(UTC)
    params, history = _risk_params(), _history_days()
    return _as_caller(lambda conn: engagement_of(conn, target, now=now, days=days, params=params,
                                                 history_days=history))


@bp.get("/journey/<user_id>")
@require_caller()
def journey(user_id: str) -> ResponseReturnValue:
    """First quest, quests completed, streak, badges, time, favourite pillar (self/parent/admin)."""
    target = uuid_arg(user_id)
    require_access_to(target)
    now = datetime.now(UTC)
    params, history = _risk_params(), _history_days()
    return _as_caller(lambda conn: journey_of(conn, target, now=now, params=params,
                                              history_days=history))


@bp.get("/at-risk-students")
@require_caller("admin", "teacher")
def at_risk_students() -> ResponseReturnValue:
    """Students whose risk is at least ``threshold``, highest first, each with factors.

    Without ``days`` the score's own window (the active set's or the settings'): the
    scores the nightly ``waymark score`` stored, as its alerts saw them.
    """
    days = _days() if "days" in request.args else None
    threshold = float_arg(request.args, "threshold", 0.7, THRESHOLD_RANGE)
    limit = int_arg(request.args, "limit", 100, AT_RISK_LIMIT_RANGE)
    live = bool_arg(request.args, "live", False)
    params, now, history = _risk_params(), datetime.now(UTC), _history_days()
    return _as_caller(lambda conn: flag_students(conn, now=now, threshold=threshold,
                                                 limit=limit, params=params, days=days,
                                                 live=live, history_days=history),
                      table=("students", "at-risk-students"))


@bp.get("/page-views")
@require_caller("admin")
def page_views() -> ResponseReturnValue:
    """Per page: views, unique visitors, bounce rate, load time, time on page."""
    days = _days()
    now = datetime.now(UTC)
    return _as_caller(lambda conn: page_view_summary(conn, now=now, days=days),
                      table=("pages", "page-views"))


@bp.get("/popular-quests")
@require_caller("admin")
def popular_quests() -> ResponseReturnValue:
    """Quests by popularity (views + 2·starts + 5·completions) with completion rate."""
    days = _days()
    limit = int_arg(request.args, "limit", 10, LIMIT_RANGE)
    now = datetime.now(UTC)
    return _as_caller(lambda conn: quest_popularity(conn, now=now, days=days, limit=limit,
                                                    use_rollup=True),
                      table=("quests", "popular-quests"))


@bp.get("/errors")
@require_caller("admin")
def errors() -> ResponseReturnValue:
    """Total errors, counts by type, top groups and the 10 most recent errors."""
    days = _days(7)
    now = datetime.now(UTC)
    return _as_caller(lambda conn: error_summary(conn, now=now, days=days),
                      table=("top_groups", "error-groups"))


@bp.get("/event-counts")
@require_caller()
def event_counts() -> ResponseReturnValue:
    """Events by category over the last N UTC days: a student's own, a parent's or teacher's
    own and their students', an admin's all (closed days from the rollup)."""
    days = _days()
    caller = current_caller()
    now = datetime.now(UTC)

    def work(conn: Any) -> dict[str, Any]:
        if caller.is_admin:
            return counts_by_category(conn, now=now, days=days, use_rollup=True)
        users = [caller.user_id]
        if caller.role in ("parent", "teacher"):
            users += visible_students(conn)
        return counts_by_category(conn, now=now, days=days, user_ids=users)

    return _as_caller(work)


@bp.get("/attribution")
@require_caller("admin")
def attribution() -> ResponseReturnValue:
    """UTM campaigns → landing visits and conversions linked within one salt period."""
    days = _days()
    period = get_state().settings.salt_period
    now = datetime.now(UTC)
    return _as_caller(lambda conn: attribution_summary(conn, now=now, days=days,
                                                       salt_period=period),
                      table=("campaigns", "campaigns"))


@bp.get("/activity")
@require_caller("admin")
def activity() -> ResponseReturnValue:
    """Visitors, sessions and page views per day, against the previous period; devices."""
    days = _days()
    now = datetime.now(UTC)
    return _as_caller(lambda conn: activity_over_time(conn, now=now, days=days),
                      table=("series", "activity"))


@bp.get("/sources")
@require_caller("admin")
def sources() -> ResponseReturnValue:
    """Sessions by referring site (direct when none, or the site's own pages)."""
    days = _days()
    now = datetime.now(UTC)
    own = (request.host, *get_state().settings.allowed_origins)
    return _as_caller(lambda conn: referrer_sources(conn, now=now, days=days, own_hosts=own),
                      table=("sources", "sources"))


@bp.get("/live")
@require_caller("admin")
def live() -> ResponseReturnValue:
    """Events in the last 5 minutes: the dashboard's live counter polls this."""
    now = datetime.now(UTC)
    return _as_caller(lambda conn: live_events(conn, now=now))


@bp.get("/risk-distribution")
@require_caller("admin")
def risk_over_time() -> ResponseReturnValue:
    """Students per risk level per day, from the stored assessments."""
    days = _days()
    now = datetime.now(UTC)
    return _as_caller(lambda conn: risk_distribution(conn, now=now, days=days),
                      table=("series", "risk-distribution"))


@bp.get("/recent/<user_id>")
@require_caller()
def recent(user_id: str) -> ResponseReturnValue:
    """A learner's latest quest starts, completions and badges (self, parent, teacher, admin)."""
    target = uuid_arg(user_id)
    limit = int_arg(request.args, "limit", 10, LIMIT_RANGE)
    require_access_to(target)
    now = datetime.now(UTC)
    return _as_caller(lambda conn: recent_activity(conn, target, now=now, limit=limit),
                      table=("activity", "recent-activity"))
