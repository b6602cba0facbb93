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
it has one. The merged rows equal ``pages.DAILY_PAGE_STATS_SQL`` over the whole day
(tests compare them). As with the hourly rollups, an event received late for a time
before ``through`` shows once the job has run again (it recomputes the prefix when such
an event arrives).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.window import day_start

#: Where the prefix may end: at 00:00 and every step since (it divides a day). Closed
#: days and the hourly event-count rollups do not depend on it.
PREFIX_STEP = timedelta(minutes=10)

#: Page views of ``[lo, hi)`` up to ``now``, as ``pages.DAILY_PAGE_STATS_SQL`` reads them.
PAGE_VIEWS = """
SELECT page_path, visitor_hash, load_time_ms, occurred_at, event_id,
       coalesce(session_id, event_id) AS session_key
FROM public.user_activity_events
WHERE event_type = 'page_view' AND page_path IS NOT NULL
  AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
"""

EXITS = """
SELECT page_path, count(duration_ms) AS time_on_page_samples,
       coalesce(sum(duration_ms), 0) AS time_on_page_sum_ms
FROM public.user_activity_events
WHERE event_type = 'page_exit' AND page_path IS NOT NULL
  AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
GROUP BY page_path
"""

#: Per page of ``[lo, hi)``: the day's sums, pages with exits only included.
PREFIX_PAGES_SQL = """
INSERT INTO public.page_view_prefix_pages (
    day, page_path, total_views, unique_visitors, sessions_entered, bounces,
    load_time_samples, load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms)
WITH pv AS MATERIALIZED (""" + PAGE_VIEWS + """
), ranked AS (
    SELECT page_path, visitor_hash, load_time_ms,
           row_number() OVER w AS position,
           count(*) OVER (PARTITION BY session_key) AS session_views
    FROM pv WINDOW w AS (PARTITION BY session_key ORDER BY occurred_at, event_id)
), views AS (
    SELECT page_path, count(*) AS total_views, count(load_time_ms) AS load_time_samples,
           coalesce(sum(load_time_ms), 0) AS load_time_sum_ms,
           count(*) FILTER (WHERE position = 1) AS sessions_entered,
           count(*) FILTER (WHERE position = 1 AND session_views = 1) AS bounces
    FROM ranked GROUP BY page_path
), uniques AS (
    SELECT page_path, count(*) AS unique_visitors
    FROM (SELECT DISTINCT page_path, visitor_hash FROM pv WHERE visitor_hash IS NOT NULL) v
    GROUP BY page_path
), exits AS (""" + EXITS + """
)
SELECT %(day)s, page_path, coalesce(v.total_views, 0), coalesce(u.unique_visitors, 0),
       coalesce(v.sessions_entered, 0), coalesce(v.bounces, 0),
       coalesce(v.load_time_samples, 0), coalesce(v.load_time_sum_ms, 0),
       coalesce(x.time_on_page_samples, 0), coalesce(x.time_on_page_sum_ms, 0)
FROM views v
LEFT JOIN uniques u USING (page_path)
FULL JOIN exits x USING (page_path)
"""  # noqa: S608 - constant SQL fragments only

PREFIX_SESSIONS_SQL = """
INSERT INTO public.page_view_prefix_sessions (day, session_key, entry_page, views)
SELECT %(day)s, session_key, (array_agg(page_path ORDER BY occurred_at, event_id))[1],
       count(*)
FROM (""" + PAGE_VIEWS + """) pv
GROUP BY session_key
"""  # noqa: S608 - constant SQL fragments only

PREFIX_VISITORS_SQL = """
INSERT INTO public.page_view_prefix_visitors (day, page_path, visitor_hash)
SELECT DISTINCT %(day)s::date, page_path, visitor_hash
FROM (""" + PAGE_VIEWS + """) pv
WHERE visitor_hash IS NOT NULL
"""  # noqa: S608 - constant SQL fragments only

MARK_PREFIX_SQL = """
INSERT INTO public.page_view_prefix (day, through, computed_at)
VALUES (%(day)s, %(hi)s, now())
ON CONFLICT (day) DO UPDATE SET through = EXCLUDED.through, computed_at = EXCLUDED.computed_at
"""

#: Replace one day's prefix (and drop every other day's: only today's is ever read).
CLEAR_PREFIX_SQL = (
    "DELETE FROM public.page_view_prefix_pages WHERE day <= %(day)s",
    "DELETE FROM public.page_view_prefix_sessions WHERE day <= %(day)s",
    "DELETE FROM public.page_view_prefix_visitors WHERE day <= %(day)s",
    "DELETE FROM public.page_view_prefix WHERE day <= %(day)s",
)

PREFIX_SQL = "SELECT through, computed_at FROM public.page_view_prefix WHERE day = %(day)s"

#: A page view or exit of ``[day start, through)`` received since the prefix was computed
#: (with a margin for writers whose transactions were still open then).
LATE_EVENT_SQL = """
SELECT EXISTS (
    SELECT 1 FROM public.user_activity_events
    WHERE received_at > %(computed_at)s - interval '5 minutes'
      AND occurred_at >= %(lo)s AND occurred_at < %(hi)s
      AND event_type IN ('page_view', 'page_exit')
) AS late
"""

PREFIX_PAGES_READ_SQL = """
SELECT page_path, total_views, unique_visitors, sessions_entered, bounces, load_time_samples,
       load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms
FROM public.page_view_prefix_pages WHERE day = %(day)s
"""

#: The page views and exits of ``[lo, hi)`` (``lo`` = the prefix's ``through``) up to
#: ``now``, as changes to the prefix's per-page sums (``bounces`` may be negative).
SINCE_PREFIX_SQL = """
WITH pv AS MATERIALIZED (""" + PAGE_VIEWS + """
), views AS (
    SELECT page_path, count(*) AS total_views, count(load_time_ms) AS load_time_samples,
           coalesce(sum(load_time_ms), 0) AS load_time_sum_ms
    FROM pv GROUP BY page_path
), sessions AS (
    SELECT session_key, (array_agg(page_path ORDER BY occurred_at, event_id))[1] AS entry_page,
           count(*) AS views
    FROM pv GROUP BY session_key
), session_changes AS (
    -- new today: entered here (a bounce with one view); already in the prefix: keeps its
    -- entry page, and is no longer a bounce if it had one view
    SELECT coalesce(p.entry_page, s.entry_page) AS page_path,
           count(*) FILTER (WHERE p.session_key IS NULL) AS sessions_entered,
           count(*) FILTER (WHERE p.session_key IS NULL AND s.views = 1)
             - count(*) FILTER (WHERE p.views = 1) AS bounces
    FROM sessions s
    LEFT JOIN public.page_view_prefix_sessions p
           ON p.day = %(day)s AND p.session_key = s.session_key
    GROUP BY 1
), new_visitors AS (
    SELECT v.page_path, count(*) AS unique_visitors
    FROM (SELECT DISTINCT page_path, visitor_hash FROM pv WHERE visitor_hash IS NOT NULL) v
    WHERE NOT EXISTS (SELECT 1 FROM public.page_view_prefix_visitors x
                      WHERE x.day = %(day)s AND x.page_path = v.page_path
                        AND x.visitor_hash = v.visitor_hash)
    GROUP BY v.page_path
), exits AS (""" + EXITS + """
)
SELECT page_path, coalesce(v.total_views, 0) AS total_views,
       coalesce(n.unique_visitors, 0) AS unique_visitors,
       coalesce(c.sessions_entered, 0) AS sessions_entered, coalesce(c.bounces, 0) AS bounces,
       coalesce(v.load_time_samples, 0) AS load_time_samples,
       coalesce(v.load_time_sum_ms, 0) AS load_time_sum_ms,
       coalesce(x.time_on_page_samples, 0) AS time_on_page_samples,
       coalesce(x.time_on_page_sum_ms, 0) AS time_on_page_sum_ms
FROM views v
FULL JOIN session_changes c USING (page_path)
FULL JOIN new_visitors n USING (page_path)
FULL JOIN exits x USING (page_path)
"""  # noqa: S608 - constant SQL fragments only

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
    rows = fetch_all(conn, PREFIX_SQL, {"day": today})
    if not rows or rows[0]["through"] != through:
        return True
    late = fetch_all(conn, LATE_EVENT_SQL, {"computed_at": rows[0]["computed_at"],
                                            "lo": day_start(today), "hi": through})
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
        for statement in CLEAR_PREFIX_SQL:
            cur.execute(statement, params)
        cur.execute(PREFIX_PAGES_SQL, params)
        cur.execute(PREFIX_SESSIONS_SQL, params)
        cur.execute(PREFIX_VISITORS_SQL, params)
        cur.execute(MARK_PREFIX_SQL, params)


def today_from_prefix(conn: psycopg.Connection[Any], day: date,
                      now: datetime) -> list[dict[str, Any]] | None:
    """Per-page sums of ``day`` up to ``now`` from its prefix and the page views since.

    None when there is no usable prefix (none for that day — or not visible to the
    caller, RLS — or one reaching past ``now``); the caller then computes the day live.
    Pages without views that day are left out, as the daily rows leave them out.
    """
    rows = fetch_all(conn, PREFIX_SQL, {"day": day})
    if not rows or rows[0]["through"] > now:
        return None
    through = rows[0]["through"]
    totals: dict[str, dict[str, int]] = {}
    parts = fetch_all(conn, PREFIX_PAGES_READ_SQL, {"day": day}) + fetch_all(
        conn, SINCE_PREFIX_SQL, {"day": day, "lo": through,
                                 "hi": day_start(day + timedelta(days=1)), "now": now})
    for row in parts:
        page = totals.setdefault(row["page_path"], dict.fromkeys(SUMMED, 0))
        for key in SUMMED:
            page[key] += int(row[key])
    return [{"day": day, "page_path": path, **sums} for path, sums in totals.items()
            if sums["total_views"] > 0]
