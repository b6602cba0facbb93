"""Page views per page: views, unique visitors, bounce rate, load time, time on page.

Days are UTC days; ``days=30`` covers today and the 29 days before it. Closed days come
from the ``page_view_analytics`` rollup (``waymark rollup``); today, and any closed day
the rollup has not reached yet, are computed live from events with the very same SQL,
so an answer does not change when a day is rolled up. Today comes from the prefix the
rollup job keeps (``page_prefix.py``: its state up to the last 10-minute mark, merged
exactly with the page views since) when there is one, else live. Per page and day:

* views: ``page_view`` events; unique visitors: distinct ``visitor_hash`` that day. A
  visitor hash is only comparable within one salt period, so the answer's
  ``unique_visitors`` is the sum of daily counts (``unique_visitors_scope``).
* bounce rate: of the sessions (``session_id``; a page view without one is a session of
  its own) whose first page view that day was this page, the share with exactly one
  page view that day.
* load time: mean ``load_time_ms`` of the page views that carry one.
* time on page: mean ``duration_ms`` of ``page_exit`` events for the page (the hook sends
  one when the user leaves a page); a page without exits has null.
Averages over several days are exact (sums and sample counts are kept, not averages).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.daily import calendar_days, live_ranges, rolled_days
from backend.services.analytics.page_prefix import today_from_prefix
from backend.services.analytics.window import day_start, ratio

SUMMED = ("total_views", "unique_visitors", "sessions_entered", "bounces", "load_time_samples",
          "load_time_sum_ms", "time_on_page_samples", "time_on_page_sum_ms")
UNIQUE_VISITORS_SCOPE = ("per UTC day, summed over the days: a visitor hash is only "
                         "comparable within one salt period")


def daily_page_stats(conn: psycopg.Connection[Any], lo: datetime, hi: datetime,
                     now: datetime) -> list[dict[str, Any]]:
    """Live per (day, page) numbers for the days in ``[lo, hi)`` (what the rollup stores)."""
    return fetch_all(conn, QUERIES["daily_page_stats"], {"lo": lo, "hi": hi, "now": now})


def page_views(conn: psycopg.Connection[Any], *, now: datetime, days: int,
               use_prefix: bool = True) -> dict[str, Any]:
    """Per-page figures for the last ``days`` UTC days (today included), busiest first.

    ``use_prefix=False`` computes today live even when the rollup job kept its prefix
    (the tests compare both).
    """
    period = calendar_days(now, days)
    rolled = rolled_days(conn, period)
    rows = fetch_all(conn, QUERIES["rolled_up_pages"], {
        "first_day": period.first_day, "today": period.today,
        "days": sorted(rolled)}) if rolled else []
    today_start = day_start(period.today)
    today = today_from_prefix(conn, period.today, period.now) if use_prefix else None
    for lo, hi in live_ranges(period, rolled):
        if today is not None and hi > today_start:
            hi = today_start  # today from the prefix instead
        if lo < hi:
            rows.extend(daily_page_stats(conn, lo, hi, period.now))
    rows.extend(today or [])
    pages = [_figures(path, totals) for path, totals in _sum_by_page(rows).items()]
    pages.sort(key=lambda p: (-p["views"], p["page_path"]))
    return {**period.describe(), "days_from_rollup": len(rolled),
            "days_live": days - len(rolled), "today_from_prefix": today is not None,
            "unique_visitors_scope": UNIQUE_VISITORS_SCOPE,
            "total_views": sum(p["views"] for p in pages), "pages": pages}


def _sum_by_page(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        page = totals.setdefault(row["page_path"], dict.fromkeys(SUMMED, 0))
        for key in SUMMED:
            page[key] += int(row[key])
    return totals


def _figures(path: str, t: dict[str, int]) -> dict[str, Any]:
    load = ratio(t["load_time_sum_ms"], t["load_time_samples"], 1)
    on_page = ratio(t["time_on_page_sum_ms"], t["time_on_page_samples"], 1)
    return {"page_path": path, "views": t["total_views"], "unique_visitors": t["unique_visitors"],
            "sessions_entered": t["sessions_entered"], "bounces": t["bounces"],
            "bounce_rate": ratio(t["bounces"], t["sessions_entered"]),
            "avg_load_time_ms": load, "avg_time_on_page_ms": on_page}
