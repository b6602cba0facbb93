"""Time windows shared by the analytics modules: ``(now − days, now]`` and UTC days, and
the event types every read of a person's activity is bound with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from backend.taxonomy import LEAVING_TYPES, NON_ACTIVITY_TYPES

#: The bound parameters of queries.sql's is_activity and is_leaving: the event types that
#: are no activity of a student's, and those that say they left (backend.taxonomy).
ACTIVITY_PARAMS: Mapping[str, list[str]] = {"passive": list(NON_ACTIVITY_TYPES),
                                            "leaving": list(LEAVING_TYPES)}


@dataclass(frozen=True)
class Window:
    """The period an answer covers: ``(since, now]``; ``days`` as asked."""

    now: datetime
    days: int

    @property
    def since(self) -> datetime:
        """The exclusive start of the window."""
        return self.now - timedelta(days=self.days)

    @property
    def today(self) -> date:
        """The UTC day of ``now``."""
        return self.now.date()

    def params(self) -> dict[str, Any]:
        """The bound parameters every windowed query uses."""
        return {"since": self.since, "now": self.now, "today": self.today}

    def describe(self) -> dict[str, Any]:
        """How the window is reported in every answer."""
        return {"days": self.days, "since": self.since.isoformat(), "until": self.now.isoformat()}


def window(now: datetime, days: int) -> Window:
    """A window ending at ``now`` (made UTC); ``days`` must be positive."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    if days < 1:
        raise ValueError("days must be at least 1")
    return Window(now.astimezone(UTC), days)


def history_since(now: datetime, history_days: int) -> datetime:
    """The exclusive start of a person's history as of ``now``.

    How far back a read of one person's events looks ("their history": first and last
    activity, streaks, the journey, quests assigned) is the anonymization age
    (WAYMARK_ANONYMIZE_AFTER_DAYS): older events are anonymized and belong to no one, and
    the bound lets PostgreSQL leave the events' older week partitions out of the plan
    (docs/analytics.md, "How far back"). Every function that reads a history takes
    ``history_days`` without a default: a caller that forgot the deployment's setting
    would read other students and other deadlines than ``waymark score`` does.
    """
    return now - timedelta(days=history_days)


def day_start(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def ratio(part: float, whole: float, digits: int = 4) -> float | None:
    """``part / whole`` rounded, or None when there is nothing to divide by."""
    if not whole:
        return None
    return round(part / whole, digits)


def capped_ratio(part: float, whole: float, digits: int = 4) -> float | None:
    """Like :func:`ratio` but at most 1 (completions of quests started before the window)."""
    value = ratio(part, whole, digits)
    return None if value is None else min(1.0, value)
