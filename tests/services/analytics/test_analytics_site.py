"""Popular quests, page views (live and rolled up), errors and attribution, hand-computed."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import add_error, add_event

from backend.services.analytics.attribution import attribution
from backend.services.analytics.errors import error_summary
from backend.services.analytics.event_counts import event_counts
from backend.services.analytics.pages import page_views
from backend.services.analytics.quests import popular_quests
from backend.services.analytics.rollup import (
    days_to_roll,
    forget_past_hours,
    hours_to_roll,
    roll_up_day,
    roll_up_hour,
)

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00")


def test_popular_quests_popularity_rate_order_and_limit(conn: psycopg.Connection[Any]) -> None:
    now = at("2026-05-10", 12)
    day = "2026-05-09"

    def quest(event_type: str, quest_id: str, n: int = 1, when: datetime | None = None) -> None:
        for _ in range(n):
            add_event(conn, event_type, when or at(day), user_id=A,
                      data={"quest_id": quest_id, "quest_title": f"Quest {quest_id}"})

    quest("quest_viewed", "q1", 3)
    quest("quest_started", "q1", 2)
    quest("quest_completed", "q1", 1)
    quest("quest_viewed", "q2", 1)
    quest("quest_started", "q2", 1)
    quest("quest_completed", "q2", 2)  # one of them started before the window
    quest("quest_started", "q2", 5, when=at("2026-04-01"))  # outside the window
    quest("quest_viewed", "q3", 10)
    quest("quest_viewed", "q4", 10)
    add_event(conn, "quest_viewed", at(day), user_id=A, data={"no": "quest id"})

    result = popular_quests(conn, now=now, days=30, limit=10)
    assert [(q["quest_id"], q["popularity"]) for q in result["quests"]] == [
        ("q2", 13), ("q1", 12), ("q3", 10), ("q4", 10)]
    q2, q1, q3, _ = result["quests"]
    assert (q1["views"], q1["starts"], q1["completions"], q1["completion_rate"]) == (3, 2, 1, 0.5)
    assert q2["completion_rate"] == 1.0  # 2 completions of 1 start in the window: capped
    assert q3["completion_rate"] is None
    assert q1["quest_title"] == "Quest q1"
    limited = popular_quests(conn, now=now, days=30, limit=2)
    assert [q["quest_id"] for q in limited["quests"]] == ["q2", "q1"]


V1, V2, V3 = b"v1" * 8, b"v2" * 8, b"v3" * 8
S1, S2, S3, S4 = (uuid.UUID(int=n) for n in (1, 2, 3, 4))
NOW = at("2026-05-10", 15)


def _page_data(conn: psycopg.Connection[Any]) -> None:
    d = "2026-05-09"
    add_event(conn, "page_view", at(d, 10), page_path="/", session_id=S1, visitor_hash=V1,
              load_time_ms=100)
    add_event(conn, "page_view", at(d, 10, 1), page_path="/quests", session_id=S1,
              visitor_hash=V1, load_time_ms=300)
    add_event(conn, "page_exit", at(d, 10, 1), page_path="/", session_id=S1, duration_ms=60_000)
    add_event(conn, "page_exit", at(d, 10, 2), page_path="/quests", session_id=S1,
              duration_ms=30_000)
    add_event(conn, "page_view", at(d, 11), page_path="/", session_id=S2, visitor_hash=V2,
              load_time_ms=200)
    add_event(conn, "page_view", at(d, 12), page_path="/quests", session_id=S3, visitor_hash=V1)
    add_event(conn, "page_exit", at(d, 12, 3), page_path="/quests", session_id=S3,
              duration_ms=90_000)
    add_event(conn, "page_view", at(d, 13), page_path="/", visitor_hash=V3, load_time_ms=400)
    add_event(conn, "page_view", at("2026-05-10", 9), page_path="/", session_id=S4,
              visitor_hash=V2, load_time_ms=500)
    add_event(conn, "page_view", at("2026-05-10", 9, 5), page_path="/badges", session_id=S4,
              visitor_hash=V2, load_time_ms=100)
    add_event(conn, "page_view", at("2026-05-10", 16), page_path="/", visitor_hash=V1)  # future
    add_event(conn, "page_view", at("2026-05-07", 9), page_path="/", visitor_hash=V1)  # too old


EXPECTED_PAGES = [
    {"page_path": "/", "views": 4, "unique_visitors": 4, "sessions_entered": 4, "bounces": 2,
     "bounce_rate": 0.5, "avg_load_time_ms": 300.0, "avg_time_on_page_ms": 60000.0},
    {"page_path": "/quests", "views": 2, "unique_visitors": 1, "sessions_entered": 1,
     "bounces": 1, "bounce_rate": 1.0, "avg_load_time_ms": 300.0,
     "avg_time_on_page_ms": 60000.0},
    {"page_path": "/badges", "views": 1, "unique_visitors": 1, "sessions_entered": 0,
     "bounces": 0, "bounce_rate": None, "avg_load_time_ms": 100.0, "avg_time_on_page_ms": None},
]


def _received_an_hour_ago(conn: psycopg.Connection[Any]) -> None:
    """Events of the fixture arrived well before the rollup runs (not while it runs)."""
    conn.execute("UPDATE user_activity_events SET received_at = now() - interval '1 hour'")


def test_page_views_live(conn: psycopg.Connection[Any]) -> None:
    _page_data(conn)
    result = page_views(conn, now=NOW, days=3)
    assert result["pages"] == EXPECTED_PAGES
    assert result["total_views"] == 7
    assert (result["first_day"], result["last_day"]) == ("2026-05-08", "2026-05-10")
    assert (result["days_from_rollup"], result["days_live"]) == (0, 3)
    assert "salt period" in result["unique_visitors_scope"]


def test_page_views_are_identical_before_and_after_the_rollup(
        conn: psycopg.Connection[Any]) -> None:
    _page_data(conn)
    _received_an_hour_ago(conn)
    before = page_views(conn, now=NOW, days=3)
    one_day = page_views(conn, now=NOW, days=2)
    assert days_to_roll(conn, now=NOW, lookback_days=30) == [
        date(2026, 5, 7), date(2026, 5, 8), date(2026, 5, 9)]
    for day in days_to_roll(conn, now=NOW, lookback_days=30):
        roll_up_day(conn, day)
    after = page_views(conn, now=NOW, days=3)
    assert after["pages"] == before["pages"] == EXPECTED_PAGES
    assert (after["days_from_rollup"], after["days_live"]) == (2, 1)  # 05-08, 05-09; today
    assert page_views(conn, now=NOW, days=2)["pages"] == one_day["pages"]
    rolled = conn.execute(
        "SELECT page_path, total_views, unique_visitors, bounce_rate, avg_load_time_ms, "
        "avg_time_on_page_ms FROM page_view_analytics WHERE day = '2026-05-09' "
        "ORDER BY page_path").fetchall()
    assert rolled == [("/", 3, 3, 2 / 3, 700 / 3, 60000.0), ("/quests", 2, 1, 1.0, 300.0, 60000.0)]
    # A second run has nothing to do.
    assert days_to_roll(conn, now=NOW, lookback_days=30) == []


def test_a_late_event_makes_its_day_roll_up_again(conn: psycopg.Connection[Any]) -> None:
    _page_data(conn)
    _received_an_hour_ago(conn)
    for day in days_to_roll(conn, now=NOW, lookback_days=30):
        roll_up_day(conn, day)
    assert days_to_roll(conn, now=NOW, lookback_days=30) == []
    add_event(conn, "page_view", at("2026-05-09", 20), page_path="/badges", session_id=S4,
              visitor_hash=V3)
    assert days_to_roll(conn, now=NOW, lookback_days=30) == [date(2026, 5, 9)]
    stale = next(p for p in page_views(conn, now=NOW, days=3)["pages"]
                 if p["page_path"] == "/badges")
    assert stale["views"] == 1  # the rolled-up day does not know yet
    roll_up_day(conn, date(2026, 5, 9))
    badges = next(p for p in page_views(conn, now=NOW, days=3)["pages"]
                  if p["page_path"] == "/badges")
    assert badges["views"] == 2


def test_event_counts_and_quests_are_identical_before_and_after_the_rollup(
        conn: psycopg.Connection[Any]) -> None:
    _page_data(conn)
    for day, quest, kind in (("2026-05-08", "q1", "quest_viewed"), ("2026-05-09", "q1",
                             "quest_started"), ("2026-05-10", "q1", "quest_completed"),
                             ("2026-05-09", "q2", "quest_viewed"), ("2026-05-06", "q2",
                             "quest_completed")):
        add_event(conn, kind, at(day, 8), user_id=A,
                  data={"quest_id": quest, "quest_title": f"Quest {quest}"})
    _received_an_hour_ago(conn)
    counts = event_counts(conn, now=NOW, days=3, use_rollup=True)
    quests = popular_quests(conn, now=NOW, days=3, limit=10, use_rollup=True)
    assert counts["counts"]["navigation"] == 10 and counts["counts"]["quest"] == 4  # 8 + 2 today
    assert [(q["quest_id"], q["popularity"]) for q in quests["quests"]] == [("q1", 8), ("q2", 1)]
    for day in days_to_roll(conn, now=NOW, lookback_days=30):
        roll_up_day(conn, day)
    counts_after = event_counts(conn, now=NOW, days=3, use_rollup=True)
    quests_after = popular_quests(conn, now=NOW, days=3, limit=10, use_rollup=True)
    assert counts_after["days_from_rollup"] == quests_after["days_from_rollup"] == 2
    assert counts_after["counts"] == counts["counts"]
    assert quests_after["quests"] == quests["quests"]
    # Today's closed hours (00:00–14:00; now is 15:00) too: still the same answers.
    hours = hours_to_roll(conn, now=NOW)
    assert hours == [at("2026-05-10", h) for h in range(15)]
    for hour in hours:
        roll_up_hour(conn, hour)
    assert hours_to_roll(conn, now=NOW) == []
    counts_hourly = event_counts(conn, now=NOW, days=3, use_rollup=True)
    quests_hourly = popular_quests(conn, now=NOW, days=3, limit=10, use_rollup=True)
    assert counts_hourly["hours_from_rollup"] == quests_hourly["hours_from_rollup"] == 15
    assert counts_hourly["counts"] == counts["counts"]
    assert quests_hourly["quests"] == quests["quests"]
    # An event of the current hour is live at once; a late one marks its hour for the job.
    add_event(conn, "quest_viewed", at("2026-05-10", 14, 59), user_id=A, data={"quest_id": "q2"})
    add_event(conn, "quest_viewed", NOW, user_id=A, data={"quest_id": "q2"})
    assert popular_quests(conn, now=NOW, days=3, limit=10, use_rollup=True)["quests"][1][
        "views"] == 2  # the late 14:59 one waits for the job; the 15:00 one is there
    assert hours_to_roll(conn, now=NOW) == [at("2026-05-10", 14)]
    roll_up_hour(conn, at("2026-05-10", 14))
    assert popular_quests(conn, now=NOW, days=3, limit=10, use_rollup=True)["quests"][1][
        "views"] == 3
    forget_past_hours(conn, now=NOW + timedelta(days=1))
    assert conn.execute("SELECT count(*) FROM rollup_hours").fetchone() == (0,)


def test_error_summary(conn: psycopg.Connection[Any]) -> None:
    now = at("2026-05-10", 12)
    add_error(conn, "javascript_error", at("2026-05-09", 1), fingerprint="f1", user_id=A)
    add_error(conn, "javascript_error", at("2026-05-09", 2), fingerprint="f1", user_id=A)
    add_error(conn, "javascript_error", at("2026-05-09", 3), fingerprint="f1", user_id=B)
    add_error(conn, "api_error", at("2026-05-09", 4), fingerprint="f2", status_code=500,
              api_endpoint="/api/x")
    add_error(conn, "network_error", at("2026-05-01", 4), fingerprint="f3")  # outside 7 days
    result = error_summary(conn, now=now, days=7, recent=3)
    assert result["total_errors"] == 4
    assert result["error_counts_by_type"] == {
        "javascript_error": 3, "api_error": 1, "network_error": 0}
    assert [(g["fingerprint"], g["errors"], g["users_affected"]) for g in result["top_groups"]] \
        == [("f1", 3, 2), ("f2", 1, 0)]
    assert [e["occurred_at"] for e in result["recent_errors"]] == [
        at("2026-05-09", h).isoformat() for h in (4, 3, 2)]
    assert result["recent_errors"][0]["status_code"] == 500
    assert "user_id" not in result["recent_errors"][0]


def test_error_groups_carry_their_trend_against_the_window_before(
        conn: psycopg.Connection[Any]) -> None:
    now = at("2026-05-10", 12)
    for hour in (1, 2, 3):  # f1: 3 now, 1 the week before → rising
        add_error(conn, "javascript_error", at("2026-05-09", hour), fingerprint="f1")
    add_error(conn, "javascript_error", at("2026-05-01", 1), fingerprint="f1")
    add_error(conn, "api_error", at("2026-05-09", 4), fingerprint="f2")  # only now → new
    for day in ("2026-05-09", "2026-05-01", "2026-04-30"):  # f3: 1 now, 2 before → falling
        add_error(conn, "network_error", at(day, 5), fingerprint="f3")
    add_error(conn, "network_error", at("2026-05-01", 6), fingerprint="f4")  # only before
    groups = error_summary(conn, now=now, days=7)["top_groups"]
    assert [(g["fingerprint"], g["errors"], g["previous_errors"], g["trend"]) for g in groups] \
        == [("f1", 3, 1, "rising"), ("f2", 1, 0, "new"), ("f3", 1, 2, "falling")]


def _visit(conn: psycopg.Connection[Any], network: bytes, when: datetime,
           campaign: str | None = None, source: str | None = None) -> None:
    add_event(conn, "landing_visit", when, network_hash=network, utm_campaign=campaign,
              utm_source=source, utm_medium="social" if campaign else None)


def _convert(conn: psycopg.Connection[Any], network: bytes, when: datetime) -> None:
    add_event(conn, "conversion", when, network_hash=network,
              data={"event": "first_game_open", "storefront": "web"})


def _attribution_data(conn: psycopg.Connection[Any]) -> None:
    n1, n2, n3, n4 = b"n1" * 8, b"n2" * 8, b"n3" * 8, b"n4" * 8
    _visit(conn, n1, at("2026-06-09", 10), "spring", "instagram")
    _visit(conn, n1, at("2026-06-09", 10, 30), "autumn", "google")
    _convert(conn, n1, at("2026-06-09", 11))  # last touch: autumn
    _visit(conn, n2, at("2026-06-08", 23, 50), "spring", "instagram")
    _convert(conn, n2, at("2026-06-09", 0, 10))  # next day: another salt period
    _visit(conn, n3, at("2026-06-09", 12))
    _convert(conn, n3, at("2026-06-09", 11, 59))  # before the visit: not caused by it
    _visit(conn, n4, at("2026-06-09", 14), "spring", "instagram")
    _convert(conn, n4, at("2026-06-09", 14, 5))


def test_attribution_links_within_one_salt_period(conn: psycopg.Connection[Any]) -> None:
    _attribution_data(conn)
    result = attribution(conn, now=at("2026-06-10", 20), days=7, salt_period="day")
    assert [(c["campaign"], c["source"], c["visits"], c["conversions"])
            for c in result["campaigns"]] == [
        ("spring", "instagram", 3, 1), ("autumn", "google", 1, 1), ("(none)", "(none)", 1, 0)]
    assert result["campaigns"][0]["conversion_rate"] == round(1 / 3, 4)
    assert (result["visits"], result["conversions"], result["attributed_conversions"],
            result["unattributed_conversions"]) == (5, 4, 2, 2)


def test_attribution_with_a_monthly_salt_links_across_midnight(
        conn: psycopg.Connection[Any]) -> None:
    _attribution_data(conn)
    result = attribution(conn, now=at("2026-06-10", 20), days=7, salt_period="month")
    spring = result["campaigns"][0]
    assert (spring["campaign"], spring["conversions"]) == ("spring", 2)
    assert result["unattributed_conversions"] == 1
