"""Popular quests: popularity = views + 2·starts + 5·completions over the last N UTC days.

Calendar days as in ``daily.py``: closed days from the ``quest_daily`` rollup when the
caller sees everything (admins), the rest live with the same SQL. Completion rate =
completions ÷ starts of the quest in the period, at most 1 (a quest started before the
period and completed in it would otherwise push it above 1); no start → null. Ties in
popularity are broken by quest id; the title is the greatest one seen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.daily import calendar_days, live_ranges, rolled_days
from backend.services.analytics.hourly import split_today
from backend.services.analytics.window import capped_ratio, day_start


def popular_quests(conn: psycopg.Connection[Any], *, now: datetime, days: int, limit: int,
                   use_rollup: bool = False) -> dict[str, Any]:
    """The ``limit`` most popular quests of the period, most popular first."""
    period = calendar_days(now, days)
    rolled = rolled_days(conn, period) if use_rollup else set()
    rows = fetch_all(conn, QUERIES["rolled_quests"], {
        "first_day": period.first_day, "today": period.today, "days": sorted(rolled)}) \
        if rolled else []
    hours_used = 0
    for lo, hi in live_ranges(period, rolled):
        hours, live = split_today(conn, lo, hi, day_start(period.today), use_rollup)
        hours_used += len(hours)
        if hours:
            rows.extend(fetch_all(conn, QUERIES["rolled_hourly_quests"], {"hours": hours}))
        for part_lo, part_hi in live:
            rows.extend(fetch_all(conn, QUERIES["daily_quest_stats"],
                                  {"lo": part_lo, "hi": part_hi, "now": period.now}))
    quests = [quest_figures(quest_id, totals) for quest_id, totals in _sum_by_quest(rows).items()]
    quests.sort(key=lambda q: (-q["popularity"], q["quest_id"]))
    return {**period.describe(), "days_from_rollup": len(rolled),
            "hours_from_rollup": hours_used, "limit": limit,
            "formula": "views + 2*starts + 5*completions", "quests": quests[:limit]}


def _sum_by_quest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        quest = totals.setdefault(row["quest_id"], {"quest_title": None, "views": 0, "starts": 0,
                                                    "completions": 0})
        if row["quest_title"] is not None and (quest["quest_title"] is None
                                               or row["quest_title"] > quest["quest_title"]):
            quest["quest_title"] = row["quest_title"]
        for key in ("views", "starts", "completions"):
            quest[key] += int(row[key])
    return totals


def quest_figures(quest_id: str, t: dict[str, Any]) -> dict[str, Any]:
    views, starts, completions = t["views"], t["starts"], t["completions"]
    return {"quest_id": quest_id, "quest_title": t["quest_title"], "views": views,
            "starts": starts, "completions": completions,
            "popularity": views + 2 * starts + 5 * completions,
            "completion_rate": capped_ratio(completions, starts)}
