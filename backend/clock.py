"""The one clock every part stamps events with (a function, so freezegun can pin it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: How far from the clock an event's ``occurred_at`` may be when it is accepted: late
#: events (an offline app catching up) up to 31 days back, a skewed client clock 5 minutes
#: ahead. Ingestion refuses the rest; the rollups and the partitions rely on it (a day,
#: or a week partition, older than MAX_PAST no longer receives rows).
MAX_PAST = timedelta(days=31)
MAX_FUTURE = timedelta(minutes=5)


def now_utc() -> datetime:
    """The current time in UTC: time of receipt for queued items, ``now`` for analytics."""
    return datetime.now(UTC)
