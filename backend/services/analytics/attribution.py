"""Attribution: UTM campaign/source → landing visits and the conversions they led to.

A landing visit is a ``landing_visit`` event (``/collect``), a conversion a
``conversion`` event (``/measure``). A conversion is credited to the latest landing
visit with the same ``network_hash`` in the same salt period that happened at or
before it (last touch). Network hashes of different salt periods cannot be matched
(the salt is gone), so nothing is linked across periods; unlinked conversions are
reported as ``unattributed_conversions``. A visit without UTM values is ``(none)``.

With a daily salt (``WAYMARK_SALT_PERIOD=day``, the default) no link crosses a UTC day,
so the closed days that lie wholly inside the window are read from ``campaign_daily``
(written by ``waymark rollup`` with the same SQL, migration 0072) and only the rest —
the window's first, partial day and today — is computed live: one range of rolled-up
days (the longest run of consecutive ones) cuts the window in two live parts, and no
conversion of one part can link to a visit of another. With a monthly salt links cross
days, and the whole window is computed live.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.window import Window, day_start, ratio, window

#: timestamptz has microsecond resolution: ``> lo - 1 µs`` is ``>= lo``.
MICROSECOND = timedelta(microseconds=1)


def campaign_day_params(day: date) -> dict[str, Any]:
    """Bound parameters of ``insert_campaigns`` (queries.sql) for ``[day, day + 1)``, daily salt."""
    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    return {"day": day, "period": "day", "since": lo - MICROSECOND, "now": hi - MICROSECOND,
            "gap_lo": hi, "gap_hi": hi}


def rolled_run(conn: psycopg.Connection[Any], win: Window) -> tuple[date, date] | None:
    """The longest run of rolled-up days wholly inside ``(since, now]``: (first, end)."""
    first, last = win.since.date() + timedelta(days=1), win.today - timedelta(days=1)
    if first > last:
        return None
    days = [r["day"] for r in fetch_all(conn, QUERIES["campaign_days"],
                                        {"first": first, "last": last})]
    best: tuple[date, date] | None = None
    start = 0
    for i, day in enumerate(days):
        if i and day != days[i - 1] + timedelta(days=1):
            start = i
        if best is None or (day - days[start]).days + 1 > (best[1] - best[0]).days:
            best = (days[start], day + timedelta(days=1))
    return best


def attribution(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                salt_period: str = "day", use_rollup: bool = True) -> dict[str, Any]:
    """Visits and last-touch conversions per (campaign, source, medium) in the window.

    ``use_rollup=False`` computes every day live (the tests compare both).
    """
    if salt_period not in ("day", "month"):
        raise ValueError(f"salt period must be 'day' or 'month', not {salt_period!r}")
    win = window(now, days)
    run = rolled_run(conn, win) if use_rollup and salt_period == "day" else None
    gap = {"gap_lo": day_start(run[0]), "gap_hi": day_start(run[1]), "gap_first_day": run[0],
           "gap_end_day": run[1]} if run else {
        "gap_lo": win.now, "gap_hi": win.now, "gap_first_day": win.today,
        "gap_end_day": win.today}
    rows = fetch_all(conn, QUERIES["attribution"], {**win.params(), "period": salt_period, **gap})
    total_row = fetch_all(conn, QUERIES["total_conversions"], win.params())
    total = int(total_row[0]["conversions"]) if total_row else 0
    campaigns = [{"campaign": r["campaign"], "source": r["source"], "medium": r["medium"],
                  "visits": int(r["visits"]), "unique_networks": int(r["unique_networks"]),
                  "conversions": int(r["conversions"]),
                  "conversion_rate": ratio(int(r["conversions"]), int(r["visits"]))}
                 for r in rows]
    attributed = sum(c["conversions"] for c in campaigns)
    return {**win.describe(), "link": f"network hash within one salt period ({salt_period})",
            "days_from_rollup": (run[1] - run[0]).days if run else 0,
            "model": "last touch", "visits": sum(c["visits"] for c in campaigns),
            "conversions": total, "attributed_conversions": attributed,
            "unattributed_conversions": total - attributed, "campaigns": campaigns}
