"""The faster query shapes give the answers of the shapes they replaced."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import HISTORY_DAYS, add_event

from backend.db import fetch_all
from backend.services.analytics import risk
from backend.services.analytics.at_risk import at_risk_students
from backend.services.analytics.attribution import attribution
from backend.services.analytics.risk import store_assessments
from backend.services.analytics.rollup import days_to_roll, roll_up_day
from backend.services.analytics.window import day_start

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
    everyone = {a.user_id: a for a in risk.score_students(conn, now=NOW, history_days=HISTORY_DAYS)}
    assert set(everyone) == {users[0], users[1], users[3]}  # the parent is not a student
    for user in [*users, uuid.uuid4()]:
        assert risk.score_students(conn, now=NOW, user_ids=[user], history_days=HISTORY_DAYS) == (
            [everyone[user]] if user in everyone else [])
    assert risk.score_students(conn, now=NOW, user_ids=users,
                               history_days=HISTORY_DAYS) == risk.rank(
        list(everyone.values()))
    rows = {r["user_id"]: r for r in risk.fetch_inputs(conn, now=NOW, history_days=HISTORY_DAYS)}
    given = {r["user_id"]: r for r in risk.fetch_inputs(conn, now=NOW, user_ids=users[:2],
                                                        history_days=HISTORY_DAYS)}
    assert given == {u: rows[u] for u in users[:2]}


#: Today's stored assessments as at-risk-students read them before migration 0070: by
#: comparing the parameters in ``details`` (a heap read per row).
OLD_STORED_FLAGGED_SQL = """
SELECT user_id, occurred_at, risk_score, engagement_level, details -> 'factors' AS factors
FROM public.learning_journey_events
WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
  AND details -> 'params' = %(params)s::jsonb AND risk_score >= %(threshold)s
ORDER BY risk_score DESC, user_id
LIMIT %(limit)s
"""


def _assessment(user: uuid.UUID, score: float, at: datetime) -> risk.RiskAssessment:
    factor = risk.Factor("inactivity", score, 1.0, {"days_since_last_activity": score * 14})
    return risk.RiskAssessment(user, score, risk.level_for(score), [factor], at)


def test_stored_assessments_found_by_params_key_as_by_params(
        conn: psycopg.Connection[Any]) -> None:
    users = sorted(uuid.uuid4() for _ in range(8))
    earlier, yesterday = NOW - timedelta(hours=3), NOW - timedelta(days=1)
    scores = [0.9, 0.75, 0.75, 0.75, 0.5, 0.2]  # ties are ordered by user id
    calibrated = risk.CALIBRATED_PARAMS
    store_assessments(conn, [_assessment(u, 0.99, yesterday) for u in users],
                      now=yesterday)  # yesterday's: never read today
    today = [_assessment(u, s, earlier) for u, s in zip(users[:6], scores, strict=True)]
    store_assessments(conn, today, now=earlier)
    store_assessments(conn, [_assessment(u, 0.8, NOW) for u in users[6:]], now=NOW,
                      params=calibrated)
    keys = conn.execute(
        "SELECT count(*) FILTER (WHERE params_key = waymark.risk_params_key(details -> 'params')),"
        " count(*) FROM learning_journey_events").fetchone()
    assert keys == (16, 16)
    for params, threshold, limit in ((risk.DEFAULT_PARAMS, 0.7, 100),
                                     (risk.DEFAULT_PARAMS, 0.0, 3),
                                     (risk.DEFAULT_PARAMS, 0.95, 10),
                                     (calibrated, 0.5, 10)):
        got = at_risk_students(conn, now=NOW, threshold=threshold, limit=limit, params=params,
                               history_days=HISTORY_DAYS)
        old = fetch_all(conn, OLD_STORED_FLAGGED_SQL, {
            "today": day_start(NOW.date()), "now": NOW, "threshold": threshold,
            "limit": limit, "params": json.dumps(params.as_dict())})
        assert got["source"] == "stored"
        assert [(s["user_id"], s["score"], s["engagement_level"], s["factors"], s["computed_at"])
                for s in got["students"]] == [
            (str(r["user_id"]), r["risk_score"], r["engagement_level"], r["factors"],
             r["occurred_at"].isoformat()) for r in old]
    default = at_risk_students(conn, now=NOW, threshold=0.7, limit=2, history_days=HISTORY_DAYS)
    assert (default["students_scored"], default["count"]) == (6, 4)
    assert [s["user_id"] for s in default["students"]] == [str(u) for u in users[:2]]
    assert default["computed_at"] == earlier.isoformat()
    other = at_risk_students(conn, now=NOW, threshold=0.7, limit=10, params=calibrated,
                             history_days=HISTORY_DAYS)
    assert (other["students_scored"], other["count"]) == (2, 2)
    # Before the calibrated refresh (now = earlier + 1 h) only the default ones exist.
    before = at_risk_students(conn, now=earlier + timedelta(hours=1), threshold=0.0,
                              limit=10, params=calibrated, history_days=HISTORY_DAYS)
    assert before["source"] == "live"


def _campaign_days(conn: psycopg.Connection[Any], seed: int) -> None:
    """A week of landing visits and conversions: networks coming back on several days,
    visits just before midnight converting just after, conversions before any visit,
    visits without a network hash, campaigns seen on one day only."""
    rng = random.Random(seed)
    networks = [bytes([n]) * 16 for n in range(8)]
    campaigns = [("spring", "instagram", "social"), ("autumn", "google", "cpc"),
                 (None, None, None), ("flash", "mail", None)]
    start = NOW - timedelta(days=8)
    for _ in range(120):
        at = start + timedelta(minutes=rng.randint(0, 8 * 24 * 60))
        network = rng.choice([*networks, None])
        if rng.random() < 0.6:
            campaign, source, medium = rng.choice(campaigns)
            add_event(conn, "landing_visit", at, network_hash=network, utm_campaign=campaign,
                      utm_source=source, utm_medium=medium)
        else:
            add_event(conn, "conversion", at, network_hash=network)
    conn.execute("UPDATE user_activity_events SET received_at = occurred_at")


def test_attribution_from_daily_campaign_rows_equals_live(conn: psycopg.Connection[Any]) -> None:
    for seed in (1, 2):
        conn.execute("DELETE FROM user_activity_events")
        conn.execute("DELETE FROM rollup_days")
        _campaign_days(conn, seed)
        for day in days_to_roll(conn, now=NOW, lookback_days=30):
            roll_up_day(conn, day)
        assert days_to_roll(conn, now=NOW, lookback_days=30) == []
        for now in (NOW, NOW - timedelta(hours=20), day_start(NOW.date())):
            for days in (1, 2, 3, 7):
                live = attribution(conn, now=now, days=days, use_rollup=False)
                rolled = attribution(conn, now=now, days=days)
                whole_days = (now.date() - (now - timedelta(days=days)).date()).days - 1
                assert rolled["days_from_rollup"] == whole_days, (now, days)
                assert {k: v for k, v in rolled.items() if k != "days_from_rollup"} == {
                    k: v for k, v in live.items() if k != "days_from_rollup"}, (seed, now, days)
                assert live["days_from_rollup"] == 0
                monthly = attribution(conn, now=now, days=days, salt_period="month")
                assert monthly["days_from_rollup"] == 0  # links cross days: live
        week = attribution(conn, now=NOW, days=7)
        assert week["days_from_rollup"] == 6 and week["visits"] > 0
        assert week["attributed_conversions"] > 0


def test_days_rolled_up_before_campaign_rows_are_rolled_up_again(
        conn: psycopg.Connection[Any]) -> None:
    _campaign_days(conn, 3)
    for day in days_to_roll(conn, now=NOW, lookback_days=30):
        roll_up_day(conn, day)
    conn.execute("UPDATE rollup_days SET campaigns = false WHERE day = %s",
                 ((NOW - timedelta(days=2)).date(),))
    conn.execute("DELETE FROM campaign_daily WHERE day = %s", ((NOW - timedelta(days=2)).date(),))
    assert days_to_roll(conn, now=NOW, lookback_days=30) == [(NOW - timedelta(days=2)).date()]
    split = attribution(conn, now=NOW, days=7)  # the longest run of rolled days: 4
    assert split["days_from_rollup"] == 4
    assert split["campaigns"] == attribution(conn, now=NOW, days=7, use_rollup=False)["campaigns"]
    roll_up_day(conn, (NOW - timedelta(days=2)).date())
    assert attribution(conn, now=NOW, days=7)["days_from_rollup"] == 6
