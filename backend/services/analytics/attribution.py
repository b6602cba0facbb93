"""Attribution: UTM campaign/source → landing visits and the conversions they led to.

A landing visit is a ``landing_visit`` event (``/collect``), a conversion a
``conversion`` event (``/measure``). A conversion is credited to the latest landing
visit with the same ``network_hash`` in the same salt period that happened at or
before it (last touch). Network hashes of different salt periods cannot be matched
(the salt is gone), so nothing is linked across periods; unlinked conversions are
reported as ``unattributed_conversions``. A visit without UTM values is ``(none)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from backend.db import fetch_all
from backend.services.analytics.window import ratio, window

ATTRIBUTION_SQL = """
WITH visits AS (
    SELECT network_hash, occurred_at,
           coalesce(utm_campaign, '(none)') AS campaign, coalesce(utm_source, '(none)') AS source,
           coalesce(utm_medium, '(none)') AS medium,
           date_trunc(%(period)s, occurred_at, 'UTC') AS period
    FROM public.user_activity_events
    WHERE event_type = 'landing_visit' AND occurred_at > %(since)s AND occurred_at <= %(now)s
), conversions AS (
    SELECT event_id, network_hash, occurred_at, date_trunc(%(period)s, occurred_at, 'UTC') AS period
    FROM public.user_activity_events
    WHERE event_type = 'conversion' AND occurred_at > %(since)s AND occurred_at <= %(now)s
), linked AS (
    SELECT DISTINCT ON (c.event_id) c.event_id, v.campaign, v.source, v.medium
    FROM conversions c
    JOIN visits v ON v.network_hash = c.network_hash AND v.period = c.period
                 AND v.occurred_at <= c.occurred_at
    ORDER BY c.event_id, v.occurred_at DESC
), visit_counts AS (
    SELECT campaign, source, medium, count(*) AS visits FROM visits GROUP BY 1, 2, 3
), network_counts AS (
    -- distinct (network_hash, period) per campaign, hashed rather than sorted as records
    SELECT campaign, source, medium, count(*) AS unique_networks
    FROM (SELECT DISTINCT campaign, source, medium, network_hash, period FROM visits) d
    GROUP BY 1, 2, 3
), conversion_counts AS (
    SELECT campaign, source, medium, count(*) AS conversions FROM linked GROUP BY 1, 2, 3
)
SELECT v.campaign, v.source, v.medium, v.visits, n.unique_networks,
       coalesce(c.conversions, 0) AS conversions
FROM visit_counts v
JOIN network_counts n USING (campaign, source, medium)
LEFT JOIN conversion_counts c USING (campaign, source, medium)
ORDER BY v.visits DESC, coalesce(c.conversions, 0) DESC, v.campaign, v.source, v.medium
"""

TOTAL_CONVERSIONS_SQL = """
SELECT count(*) AS conversions FROM public.user_activity_events
WHERE event_type = 'conversion' AND occurred_at > %(since)s AND occurred_at <= %(now)s
"""


def attribution(conn: psycopg.Connection[Any], *, now: datetime, days: int,
                salt_period: str = "day") -> dict[str, Any]:
    """Visits and last-touch conversions per (campaign, source, medium) in the window."""
    if salt_period not in ("day", "month"):
        raise ValueError(f"salt period must be 'day' or 'month', not {salt_period!r}")
    win = window(now, days)
    rows = fetch_all(conn, ATTRIBUTION_SQL, {**win.params(), "period": salt_period})
    total_row = fetch_all(conn, TOTAL_CONVERSIONS_SQL, win.params())
    total = int(total_row[0]["conversions"]) if total_row else 0
    campaigns = [{"campaign": r["campaign"], "source": r["source"], "medium": r["medium"],
                  "visits": int(r["visits"]), "unique_networks": int(r["unique_networks"]),
                  "conversions": int(r["conversions"]),
                  "conversion_rate": ratio(int(r["conversions"]), int(r["visits"]))}
                 for r in rows]
    attributed = sum(c["conversions"] for c in campaigns)
    return {**win.describe(), "link": f"network hash within one salt period ({salt_period})",
            "model": "last touch", "visits": sum(c["visits"] for c in campaigns),
            "conversions": total, "attributed_conversions": attributed,
            "unattributed_conversions": total - attributed, "campaigns": campaigns}
