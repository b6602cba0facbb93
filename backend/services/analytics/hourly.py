"""Today's closed hours, rolled up for the additive answers (event counts, quest figures).

A live range that reaches into today is split at the hours listed in ``rollup_hours``:
those come from the hourly tables, the rest (the current hour, and any hour the job has
not reached) is computed live with the same SQL. Sums of counts are exact, so an answer
does not change when an hour is rolled up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics import QUERIES

HOUR = timedelta(hours=1)

def rolled_hours(conn: psycopg.Connection[Any], lo: datetime, hi: datetime) -> set[datetime]:
    """Rolled-up hours starting in ``[lo, hi)``."""
    rows = fetch_all(conn, QUERIES["rolled_hours"], {"lo": lo, "hi": hi})
    return {row["hour"] for row in rows}


def split_by_hours(lo: datetime, hi: datetime,
                   rolled: set[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """The parts of ``[lo, hi)`` (``lo`` on an hour) not covered by ``rolled`` hours."""
    start: datetime | None = None
    hour = lo
    while hour < hi:
        if hour in rolled:
            if start is not None:
                yield start, hour
                start = None
        elif start is None:
            start = hour
        hour += HOUR
    if start is not None:
        yield start, hi


def split_today(conn: psycopg.Connection[Any], lo: datetime, hi: datetime,
                today_start: datetime, use_hours: bool
                ) -> tuple[list[datetime], list[tuple[datetime, datetime]]]:
    """For a live range ``[lo, hi)``: (rolled hours of today to read, ranges to compute live)."""
    if not use_hours or hi <= today_start:
        return [], [(lo, hi)]
    live: list[tuple[datetime, datetime]] = []
    if lo < today_start:
        live.append((lo, today_start))
        lo = today_start
    hours = rolled_hours(conn, lo, hi)
    live.extend(split_by_hours(lo, hi, hours))
    return sorted(hours), live
