"""Today's page figures up to the last 10-minute mark, kept by the rollup job (the prefix).

Unique visitors, entries and bounces are per day and per session, not sums over hours,
so today cannot be added up from hourly rows like event counts. Instead ``waymark
rollup`` keeps, for ``[00:00, through)`` of today (``through`` = the last multiple of
``PREFIX_STEP`` since 00:00 when it ran), what an exact merge with the rest of the day
needs (migration 0071):

* per page, the sums ``page_view_analytics`` keeps for a day — pages with exits but no
  views included, since a view later in the day brings their exits into the answer;
* per session key (``coalesce(session_id, event_id)``): its entry page and views;
* the distinct ``(page, visitor_hash)`` pairs.

The page views since ``through`` are read live and merged. That costs about 10 µs per
page view at 10M events (bench/README), so the job runs every ``PREFIX_STEP`` (cron in
render.yaml, a few minutes after each mark): at most one step plus that delay is live,
not the hour an hourly run left. Views, load times and exits add up; a session new today
is entered on its first page (a bounce if it has one view), a session already in the
prefix keeps its entry page and stops being a bounce if it had one view; a visitor
counts for a page only if the pair is not in the prefix. Times in the prefix are all
before ``through``, so "first page view" (by time, then event id) is the prefix's when
it has one. The merged rows equal ``daily_page_stats`` (queries.sql) over the whole day
(tests compare them). As with the hourly rollups, an event received late for a time
before ``through`` shows once the job has run again (it recomputes the prefix when such
an event arrives).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.window import day_start

#: Where the prefix may end: at 00:00 and every step since (it divides a day). Closed
#: days and the hourly event-count rollups do not depend on it.
PREFIX_STEP = timedelta(minutes=10)

#: Replacing a day's prefix, in order (queries.sql): every older day's is dropped with it,
#: as only today's is ever read; then the three parts, then the mark saying how far it goes.
PREFIX_STATEMENTS = ("clear_prefix_pages", "clear_prefix_sessions", "clear_prefix_visitors",
                     "clear_prefix", "prefix_pages", "prefix_sessions", "prefix_visitors",
                     "mark_prefix")

SUMMED = ("total_views", "unique_visitors", "sessions_entered", "bounces", "load_time_samples",
          "load_time_sum_ms", "time_on_page_samples", "time_on_page_sum_ms")


def prefix_end(now: datetime) -> datetime:
    """The last ``PREFIX_STEP`` mark of ``now``'s day at or before ``now``."""
    start = day_start(now.date())
    return start + (now - start) // PREFIX_STEP * PREFIX_STEP


def prefix_due(conn: psycopg.Connection[Any], *, now: datetime) -> bool:
    """Whether today's prefix is missing, behind the last mark, or missed a late event."""
    today = now.date()
    through = prefix_end(now)
    if through <= day_start(today):
        return False  # no closed step today yet
    rows = fetch_all(conn, QUERIES["prefix"], {"day": today})
    if not rows or rows[0]["through"] != through:
        return True
    late = fetch_all(conn, QUERIES["late_prefix_event"], {
        "computed_at": rows[0]["computed_at"], "lo": day_start(today), "hi": through})
    return bool(late and late[0]["late"])


def roll_up_prefix(conn: psycopg.Connection[Any], *, now: datetime) -> bool:
    """Recompute today's prefix up to the last ``PREFIX_STEP`` mark if due."""
    if not prefix_due(conn, now=now):
        return False
    compute_prefix(conn, now.date(), prefix_end(now))
    return True


def compute_prefix(conn: psycopg.Connection[Any], day: date, through: datetime) -> None:
    """Replace ``day``'s prefix with ``[00:00, through)`` (one transaction).

    The merge is exact for any ``through`` of that day; the job uses the marks only, and
    the benchmark sets the worst case between two runs with this.
    """
    params = {"day": day, "lo": day_start(day), "hi": through, "now": through}
    with conn.transaction(), conn.cursor() as cur:
        for name in PREFIX_STATEMENTS:
            cur.execute(QUERIES[name], params)


def today_from_prefix(conn: psycopg.Connection[Any], day: date,
                      now: datetime) -> list[dict[str, Any]] | None:
    """Per-page sums of ``day`` up to ``now`` from its prefix and the page views since.

    None when there is no usable prefix (none for that day — or not visible to the
    caller, RLS — or one reaching past ``now``); the caller then computes the day live.
    Pages without views that day are left out, as the daily rows leave them out.
    """
    rows = fetch_all(conn, QUERIES["prefix"], {"day": day})
    if not rows or rows[0]["through"] > now:
        return None
    through = rows[0]["through"]
    totals: dict[str, dict[str, int]] = {}
    parts = fetch_all(conn, QUERIES["prefix_pages_read"], {"day": day}) + fetch_all(
        conn, QUERIES["since_prefix"], {"day": day, "lo": through,
                                        "hi": day_start(day + timedelta(days=1)), "now": now})
    for row in parts:
        page = totals.setdefault(row["page_path"], dict.fromkeys(SUMMED, 0))
        for key in SUMMED:
            page[key] += int(row[key])
    return [{"day": day, "page_path": path, **sums} for path, sums in totals.items()
            if sums["total_views"] > 0]
