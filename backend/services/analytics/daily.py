"""Calendar-day periods for answers that combine rolled-up closed days with live ones.

``days=N`` covers the N most recent UTC days, today included: from 00:00 UTC of the
first day up to ``now``. Days listed in ``rollup_days`` are read from the rollup
tables; every other day (today, and any closed day the rollup has not reached) is
computed live from events with the same SQL the rollup uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.window import day_start


@dataclass(frozen=True)
class Days:
    """The N most recent UTC days up to ``now``."""

    now: datetime
    days: int

    @property
    def today(self) -> date:
        """The UTC day of ``now`` (the last, open day)."""
        return self.now.date()

    @property
    def first_day(self) -> date:
        """The first day covered."""
        return self.today - timedelta(days=self.days - 1)

    def describe(self) -> dict[str, Any]:
        """How the period is reported in answers."""
        return {"days": self.days, "first_day": self.first_day.isoformat(),
                "last_day": self.today.isoformat(), "until": self.now.isoformat()}


def calendar_days(now: datetime, days: int) -> Days:
    """The period of ``days`` UTC days ending at ``now`` (made UTC)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    if days < 1:
        raise ValueError("days must be at least 1")
    return Days(now.astimezone(UTC), days)


def rolled_days(conn: psycopg.Connection[Any], period: Days) -> set[date]:
    """Closed days of the period whose rollup rows are complete."""
    rows = fetch_all(conn, QUERIES["rolled_days"], {"first_day": period.first_day,
                                                    "today": period.today})
    return {row["day"] for row in rows}


def live_ranges(period: Days, rolled: set[date]) -> Iterator[tuple[datetime, datetime]]:
    """``[lo, hi)`` timestamp ranges of the days that must be computed live."""
    lo: date | None = None
    day = period.first_day
    while day <= period.today:
        if day in rolled:
            if lo is not None:
                yield day_start(lo), day_start(day)
                lo = None
        elif lo is None:
            lo = day
        day += timedelta(days=1)
    if lo is not None:
        yield day_start(lo), day_start(period.today + timedelta(days=1))
