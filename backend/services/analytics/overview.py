"""What the dashboard needs besides the per-concern answers: activity over time, devices,
the live counter, the risk distribution over time and one learner's recent activity.

Activity is counted from the events of the period (a visitor: a user, or anonymously a
visitor hash; a session: the writer's session id; a page view: a ``page_view`` event), one
range scan of the occurred_at index for the days asked and one for the period before, which
the answer compares with (the question a person asks first: "more or less than last
month?").
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.analytics import QUERIES, risk
from backend.services.analytics.window import ACTIVITY_PARAMS, day_start

#: The live counter's span.
LIVE_MINUTES = 5
#: Figures of a period, in the order a table shows them.
ACTIVITY_FIGURES = ("visitors", "sessions", "page_views")


def activity_over_time(conn: psycopg.Connection[Any], *, now: datetime, days: int
                       ) -> dict[str, Any]:
    """Daily visitors, sessions and page views for the last ``days`` UTC days (today
    included), the period's totals, the previous period's totals and sessions by device."""
    today = now.date()
    first_day = today - timedelta(days=days - 1)
    lo = day_start(first_day)
    previous_lo = day_start(first_day - timedelta(days=days))
    series = fetch_all(conn, QUERIES["activity_daily"], {
        "first_day": first_day, "today": today, "lo": lo, "now": now, **ACTIVITY_PARAMS})
    current = fetch_one(conn, QUERIES["activity_period"], {"lo": lo, "hi": now, **ACTIVITY_PARAMS})
    previous = fetch_one(conn, QUERIES["activity_period"],
                         {"lo": previous_lo, "hi": lo, **ACTIVITY_PARAMS})
    devices = fetch_all(conn, QUERIES["sessions_by_device"], {"lo": lo, "now": now})
    return {
        "days": days, "first_day": first_day.isoformat(), "last_day": today.isoformat(),
        "series": [{"day": _iso_day(row["day"]), **{k: int(row[k]) for k in ACTIVITY_FIGURES}}
                   for row in series],
        "current": _figures(current),
        "previous": {**_figures(previous), "first_day": (first_day - timedelta(days=days))
                     .isoformat(), "last_day": (first_day - timedelta(days=1)).isoformat()},
        "devices": [{"device_type": row["device_type"], "sessions": int(row["sessions"])}
                    for row in devices],
    }


def referrer_sources(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                     own_hosts: tuple[str, ...] = (), limit: int = 50) -> dict[str, Any]:
    """Sessions of the last ``days`` by referring host; ``None`` is direct (no referrer, or
    one of ``own_hosts``: a page of the site itself)."""
    lo = day_start(now.date() - timedelta(days=days - 1))
    rows = fetch_all(conn, QUERIES["referrer_sources"], {
        "lo": lo, "now": now, "own_hosts": [own_host(h) for h in own_hosts], "limit": limit})
    return {"days": days, "sources": [
        {"source": row["source"], "sessions": int(row["sessions"])}
        for row in rows if row["sessions"]]}


def own_host(host: str) -> str:
    """A host as ``referrer_sources`` compares it: lower case, no port, no ``www.``."""
    name = host.lower().split("://")[-1].split("/")[0].rsplit(":", 1)[0]
    return name.removeprefix("www.")


def live_events(conn: psycopg.Connection[Any], *, now: datetime,
                minutes: int = LIVE_MINUTES) -> dict[str, Any]:
    """Events and distinct visitors in the last ``minutes`` (the caller's rows, under RLS)."""
    since = now - timedelta(minutes=minutes)
    row = fetch_one(conn, QUERIES["live_events"], {"since": since, "now": now, **ACTIVITY_PARAMS})
    return {"minutes": minutes, "events": int(row["events"]) if row else 0,
            "visitors": int(row["visitors"]) if row else 0,
            "since": since.isoformat(), "until": now.isoformat()}


def risk_distribution(conn: psycopg.Connection[Any], *, now: datetime, days: int
                      ) -> dict[str, Any]:
    """Students per risk level (low … critical, as everywhere a person reads it) per day,
    from the stored assessments (which keep the engagement level: the same cut points)."""
    levels = risk.RISK_LEVELS
    to_risk = dict(zip(risk.LEVELS, risk.RISK_LEVELS, strict=True))
    first_day = now.date() - timedelta(days=days - 1)
    rows = fetch_all(conn, QUERIES["risk_distribution_daily"], {
        "lo": day_start(first_day), "now": now})
    by_day: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_day.setdefault(_iso_day(row["day"]), dict.fromkeys(levels, 0))
        level = to_risk.get(row["engagement_level"])
        if level is not None:
            counts[level] += int(row["students"])
    return {"days": days, "first_day": first_day.isoformat(), "levels": list(levels),
            "series": [{"day": day, **counts} for day, counts in sorted(by_day.items())]}


def recent_activity(conn: psycopg.Connection[Any], user_id: uuid.UUID, *, now: datetime,
                    limit: int) -> dict[str, Any]:
    """One learner's latest quest starts and completions and badges, newest first."""
    rows = fetch_all(conn, QUERIES["recent_activity"], {
        "user_id": user_id, "now": now, "limit": limit})
    return {"user_id": str(user_id), "activity": [{
        "occurred_at": row["occurred_at"].isoformat(), "event_type": row["event_type"],
        "quest_id": row["quest_id"], "quest_title": row["quest_title"], "pillar": row["pillar"],
        "badge_id": row["badge_id"], "xp": _int_or_none(row["xp"]),
    } for row in rows]}


def _figures(row: dict[str, Any] | None) -> dict[str, int]:
    return {k: int(row[k]) if row else 0 for k in ACTIVITY_FIGURES}


def _iso_day(value: date) -> str:
    return value.isoformat()


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
