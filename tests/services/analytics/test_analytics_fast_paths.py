"""The faster query shapes give the answers of the shapes they replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import add_event

from backend.db import fetch_all
from backend.services import risk
from backend.services.analytics.attribution import attribution

NOW = datetime(2026, 6, 10, 20, 0, tzinfo=UTC)

#: unique_networks as attribution computed it before (distinct records, sorted).
OLD_UNIQUE_NETWORKS_SQL = """
SELECT coalesce(utm_campaign, '(none)') AS campaign,
       count(DISTINCT (network_hash, date_trunc(%(period)s, occurred_at, 'UTC'))) AS n
FROM public.user_activity_events
WHERE event_type = 'landing_visit' AND occurred_at > %(since)s AND occurred_at <= %(now)s
GROUP BY 1
"""


def _visit(conn: psycopg.Connection[Any], network: bytes | None, when: datetime,
           campaign: str | None) -> None:
    add_event(conn, "landing_visit", when, network_hash=network, utm_campaign=campaign)


def _networks_data(conn: psycopg.Connection[Any]) -> None:
    a, b = b"a" * 16, b"b" * 16
    day1, day2 = NOW - timedelta(days=2), NOW - timedelta(days=1)
    for campaign in ("spring", None):
        _visit(conn, a, day1, campaign)
        _visit(conn, a, day1 + timedelta(minutes=5), campaign)  # same network, same day
        _visit(conn, a, day2, campaign)  # same network, next day: another salt period
        _visit(conn, b, day2, campaign)
        _visit(conn, None, day1, campaign)  # no hash: one per period, as before
        _visit(conn, None, day1 + timedelta(minutes=1), campaign)
        _visit(conn, None, day2, campaign)
    _visit(conn, b, NOW - timedelta(days=40), "spring")  # outside the window


def test_unique_networks_per_salt_period_as_before(conn: psycopg.Connection[Any]) -> None:
    _networks_data(conn)
    for period, expected in (("day", 5), ("month", 3)):
        result = attribution(conn, now=NOW, days=7, salt_period=period)
        got = {c["campaign"]: c["unique_networks"] for c in result["campaigns"]}
        old = {r["campaign"]: r["n"] for r in fetch_all(conn, OLD_UNIQUE_NETWORKS_SQL, {
            "period": period, "since": NOW - timedelta(days=7), "now": NOW})}
        assert got == old == {"spring": expected, "(none)": expected}
        assert [c["visits"] for c in result["campaigns"]] == [7, 7]


def _risk_data(conn: psycopg.Connection[Any]) -> list[uuid.UUID]:
    regular, idle, parent, assigned_only = (uuid.uuid4() for _ in range(4))
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (parent, regular))
    for day in range(10):
        at = NOW - timedelta(days=day, hours=2)
        add_event(conn, "login_success", at, user_id=regular)
        add_event(conn, "page_view", at + timedelta(minutes=3), user_id=regular,
                  duration_ms=60_000)
    add_event(conn, "quest_started", NOW - timedelta(days=3), user_id=regular,
              data={"quest_id": "q1"})
    add_event(conn, "quest_completed", NOW - timedelta(days=2), user_id=regular,
              data={"quest_id": "q1", "pillar": "stem", "xp": 10})
    add_event(conn, "page_view", NOW - timedelta(days=45), user_id=idle)
    add_event(conn, "page_view", NOW - timedelta(days=1), user_id=parent)
    add_event(conn, "quest_assigned", NOW - timedelta(days=5), user_id=assigned_only,
              data={"quest_id": "q2", "due_at": (NOW - timedelta(days=1)).isoformat()})
    return [regular, idle, parent, assigned_only]


def test_risk_for_given_students_equals_their_rows_among_everyone(
        conn: psycopg.Connection[Any]) -> None:
    users = _risk_data(conn)
    everyone = {a.user_id: a for a in risk.score_students(conn, now=NOW)}
    assert set(everyone) == {users[0], users[1], users[3]}  # the parent is not a student
    for user in [*users, uuid.uuid4()]:
        assert risk.score_students(conn, now=NOW, user_ids=[user]) == (
            [everyone[user]] if user in everyone else [])
    assert risk.score_students(conn, now=NOW, user_ids=users) == risk.rank(
        list(everyone.values()))
    rows = {r["user_id"]: r for r in risk.fetch_inputs(conn, now=NOW)}
    given = {r["user_id"]: r for r in risk.fetch_inputs(conn, now=NOW, user_ids=users[:2])}
    assert given == {u: rows[u] for u in users[:2]}
