"""The one clock every part stamps events with (a function, so freezegun can pin it)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    """The current time in UTC: time of receipt for queued items, ``now`` for analytics."""
    return datetime.now(UTC)
