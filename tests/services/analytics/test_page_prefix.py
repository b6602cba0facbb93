"""Today's page figures from the prefix equal the live ones, at every 10-minute cut."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import add_event
from conftest import AuthTokens
from psycopg import sql

from backend.db import Database
from backend.services.analytics.page_prefix import (
    PREFIX_STEP,
    prefix_due,
    prefix_end,
    roll_up_prefix,
    today_from_prefix,
)
from backend.services.analytics.pages import daily_page_stats, page_views
from backend.services.analytics.window import day_start

TODAY_START = datetime(2026, 5, 10, tzinfo=UTC)
NOW = TODAY_START + timedelta(hours=15, minutes=40)
PAGES = ("/", "/quests", "/badges", "/tutor")


def _day_of_page_views(conn: psycopg.Connection[Any], seed: int) -> None:
    """Sessions spread over the day (many cross the cuts, some start on one: whole
    minutes), views without a session,
    equal times (ordered by event id), visitors coming back, a page with exits only,
    load times missing, events after now and yesterday's."""
    rng = random.Random(seed)
    visitors = [bytes([n]) * 16 for n in range(6)]
    rows: list[tuple[Any, ...]] = []
    for _ in range(40):
        session = uuid.UUID(int=rng.getrandbits(128))
        visitor = rng.choice([*visitors, None])
        at = TODAY_START + timedelta(minutes=rng.randint(0, 17 * 60))
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            rows.append(("page_view", at, rng.choice(PAGES), session, visitor,
                         rng.choice((None, 120, 480)), None))
            if rng.random() < 0.5:
                rows.append(("page_exit", at, rows[-1][2], session, None, None,
                              rng.randint(1_000, 90_000)))
            at += timedelta(minutes=rng.choice((0, 0, 7, 50, 130)))  # 0: same time
    for _ in range(10):  # no session id: each view is a session of its own
        rows.append(("page_view", TODAY_START + timedelta(minutes=rng.randint(0, 15 * 60)),
                     rng.choice(PAGES), None, rng.choice(visitors), 200, None))
    rows.append(("page_exit", TODAY_START + timedelta(hours=3), "/exits-only", None, None,
                 None, 5_000))
    rows.append(("page_exit", TODAY_START + timedelta(hours=14), "/late-view", None, None,
                 None, 7_000))
    rows.append(("page_view", TODAY_START + timedelta(hours=15, minutes=10), "/late-view",
                 None, visitors[0], None, None))
    rows.append(("page_view", TODAY_START - timedelta(hours=1), "/", None, visitors[0], 1, None))
    for event_type, at, page, session, visitor, load, duration in rows:
        add_event(conn, event_type, at, page_path=page, session_id=session,
                  visitor_hash=visitor, load_time_ms=load, duration_ms=duration)
    conn.execute("UPDATE user_activity_events SET received_at = occurred_at")


def _by_page(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    keys = ("total_views", "unique_visitors", "sessions_entered", "bounces",
            "load_time_samples", "load_time_sum_ms", "time_on_page_samples",
            "time_on_page_sum_ms")
    return {r["page_path"]: {k: int(r[k]) for k in keys} for r in rows}


def test_prefix_and_page_views_since_equal_the_live_day_at_every_mark(
        conn: psycopg.Connection[Any]) -> None:
    for seed in (1, 2, 3):
        conn.execute("DELETE FROM user_activity_events")
        _day_of_page_views(conn, seed)
        live_day = _by_page(daily_page_stats(conn, TODAY_START, TODAY_START + timedelta(days=1),
                                             NOW))
        live = page_views(conn, now=NOW, days=2, use_prefix=False)
        assert live["today_from_prefix"] is False
        assert "/late-view" in live_day and "/exits-only" not in live_day
        marks = (NOW - TODAY_START) // PREFIX_STEP  # 00:10 ... 15:40
        for mark in range(1, marks + 1):
            through = TODAY_START + mark * PREFIX_STEP
            assert roll_up_prefix(conn, now=through + timedelta(minutes=5))
            assert conn.execute("SELECT through FROM page_view_prefix").fetchone() == (through,)
            merged = today_from_prefix(conn, NOW.date(), NOW)
            assert merged is not None
            assert _by_page(merged) == live_day, (seed, through)
            answer = page_views(conn, now=NOW, days=2)
            assert answer["today_from_prefix"] is True
            assert answer["pages"] == live["pages"], (seed, through)


def test_the_prefix_ends_at_the_last_mark_of_the_day() -> None:
    assert timedelta(days=1) % PREFIX_STEP == timedelta(0)
    assert prefix_end(TODAY_START) == TODAY_START
    assert prefix_end(TODAY_START + PREFIX_STEP - timedelta(microseconds=1)) == TODAY_START
    assert prefix_end(NOW + timedelta(seconds=59)) == NOW  # 15:40 is a mark
    assert prefix_end(TODAY_START + timedelta(hours=23, minutes=59)) == (
        TODAY_START + timedelta(days=1) - PREFIX_STEP)


def test_the_job_recomputes_the_prefix_only_when_due(conn: psycopg.Connection[Any]) -> None:
    _day_of_page_views(conn, 4)
    early = TODAY_START + PREFIX_STEP - timedelta(minutes=1)
    assert not prefix_due(conn, now=early)  # no closed step today
    assert not roll_up_prefix(conn, now=early)
    assert today_from_prefix(conn, NOW.date(), NOW) is None
    at_nine = TODAY_START + timedelta(hours=9, minutes=5)
    assert roll_up_prefix(conn, now=at_nine)
    soon = at_nine + timedelta(minutes=4)
    assert not prefix_due(conn, now=soon)
    assert prefix_due(conn, now=at_nine + PREFIX_STEP)  # a new mark
    # a page view for 08:00 arriving now makes the prefix stale, and the job fixes it
    add_event(conn, "page_view", TODAY_START + timedelta(hours=8), page_path="/new",
              visitor_hash=b"n" * 16)
    conn.execute("UPDATE user_activity_events SET received_at = now() + interval '1 day' "
                 "WHERE page_path = '/new'")
    conn.execute("UPDATE page_view_prefix SET computed_at = now()")
    assert prefix_due(conn, now=soon)
    stale = _by_page(today_from_prefix(conn, NOW.date(), NOW) or [])
    assert "/new" not in stale  # what the prefix does not know yet
    assert roll_up_prefix(conn, now=soon)
    fixed = _by_page(today_from_prefix(conn, NOW.date(), NOW) or [])
    assert fixed["/new"]["total_views"] == 1
    assert fixed == _by_page(daily_page_stats(conn, TODAY_START,
                                              TODAY_START + timedelta(days=1), NOW))
    # a prefix reaching past the asked time is not used; the next day drops the old one
    assert today_from_prefix(conn, NOW.date(), at_nine - timedelta(hours=2)) is None
    tomorrow = TODAY_START + timedelta(days=1, hours=2, minutes=5)
    for table in ("page_view_prefix_pages", "page_view_prefix_sessions",
                  "page_view_prefix_visitors"):
        query = sql.SQL("SELECT count(*) > 0 FROM {}").format(sql.Identifier(table))
        assert conn.execute(query).fetchone() == (True,)
    add_event(conn, "page_view", day_start(tomorrow.date()) + timedelta(hours=1),
              page_path="/", session_id=uuid.uuid4(), visitor_hash=b"t" * 16)
    assert roll_up_prefix(conn, now=tomorrow)
    for table in ("page_view_prefix_pages", "page_view_prefix_sessions",
                  "page_view_prefix_visitors", "page_view_prefix"):
        days = conn.execute(sql.SQL("SELECT DISTINCT day FROM {}").format(
            sql.Identifier(table))).fetchall()
        assert days == [(tomorrow.date(),)], table


def test_only_admins_read_the_prefix(conn: psycopg.Connection[Any], db: Database,
                                     auth: AuthTokens) -> None:
    _day_of_page_views(conn, 5)
    assert roll_up_prefix(conn, now=TODAY_START + timedelta(hours=12, minutes=5))
    with db.as_user(auth.claims(uuid.uuid4(), "student")) as user_conn:
        assert today_from_prefix(user_conn, NOW.date(), NOW) is None
    with db.as_user(auth.claims(uuid.uuid4(), "admin")) as user_conn:
        assert today_from_prefix(user_conn, NOW.date(), NOW) is not None
