"""The analytics endpoints over HTTP: access (401/403, RLS), parameters (400), numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS, add_error, add_event
from flask.testing import FlaskClient
from freezegun import freeze_time

from backend.services.analytics.risk import score_students, store_assessments
from backend.services.analytics.rollup import days_to_roll, roll_up_day

STUDENT_A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
STUDENT_B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
PARENT = uuid.UUID("00000000-0000-4000-8000-0000000000c3")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000d4")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

ADMIN_ONLY = ["/api/analytics/at-risk-students", "/api/analytics/page-views",
              "/api/analytics/popular-quests", "/api/analytics/errors",
              "/api/analytics/attribution"]
PER_USER = [f"/api/analytics/engagement/{STUDENT_A}", f"/api/analytics/journey/{STUDENT_A}"]


@pytest.fixture
def data(conn: psycopg.Connection[Any]) -> None:
    """A is active daily for 5 days up to today; B was last seen 40 days ago; P is A's parent."""
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, STUDENT_A))
    for n in range(5):
        day = NOW - timedelta(days=n, hours=1)
        add_event(conn, "login_success", day, user_id=STUDENT_A)
        add_event(conn, "page_view", day + timedelta(minutes=1), user_id=STUDENT_A,
                  page_path="/quests/q1", session_id=uuid.UUID(int=n + 1),
                  visitor_hash=bytes([n]) * 16, load_time_ms=200)
        add_event(conn, "quest_started", day + timedelta(minutes=2), user_id=STUDENT_A,
                  data={"quest_id": f"q{n}"})
        add_event(conn, "quest_completed", day + timedelta(minutes=20), user_id=STUDENT_A,
                  data={"quest_id": f"q{n}", "pillar": "stem", "xp": 10})
    add_event(conn, "login_success", NOW - timedelta(days=40), user_id=STUDENT_B)
    add_event(conn, "page_view", NOW - timedelta(days=40), user_id=STUDENT_B, page_path="/")
    add_event(conn, "parent_dashboard_opened", NOW - timedelta(hours=2), user_id=PARENT)
    add_error(conn, "api_error", NOW - timedelta(hours=3), fingerprint="f1", status_code=502,
              user_id=STUDENT_A)
    add_event(conn, "landing_visit", NOW - timedelta(hours=5), network_hash=b"n" * 16,
              utm_campaign="spring", utm_source="instagram")
    add_event(conn, "conversion", NOW - timedelta(hours=4), network_hash=b"n" * 16)


def get(client: FlaskClient, auth: Any, path: str, user: uuid.UUID | None,
        role: str = "student") -> Any:
    with freeze_time(NOW):
        headers = auth.header(user, role) if user else {}
        return client.get(path, headers=headers)


def test_every_endpoint_needs_a_token(client: FlaskClient, auth: Any) -> None:
    for path in [*ADMIN_ONLY, *PER_USER, "/api/analytics/event-counts"]:
        answer = get(client, auth, path, None)
        assert answer.status_code == 401, path
        assert "error" in answer.get_json()


def test_admin_endpoints_refuse_students_and_parents(client: FlaskClient, auth: Any,
                                                     data: None) -> None:
    for path in ADMIN_ONLY:
        for user, role in ((STUDENT_A, "student"), (PARENT, "parent")):
            answer = get(client, auth, path, user, role)
            assert answer.status_code == 403, path
            assert set(answer.get_json()) == {"error"}
        assert get(client, auth, path, ADMIN, "admin").status_code == 200, path


def test_per_user_endpoints_self_parent_admin_only(client: FlaskClient, auth: Any,
                                                   data: None) -> None:
    for path in PER_USER:
        assert get(client, auth, path, STUDENT_A).status_code == 200, path
        assert get(client, auth, path, PARENT, "parent").status_code == 200, path
        assert get(client, auth, path, ADMIN, "admin").status_code == 200, path
        refused = get(client, auth, path, STUDENT_B)
        assert refused.status_code == 403 and set(refused.get_json()) == {"error"}
        other = path.replace(str(STUDENT_A), str(STUDENT_B))
        refused = get(client, auth, other, PARENT, "parent")
        assert refused.status_code == 403 and set(refused.get_json()) == {"error"}


def test_engagement_numbers_over_http(client: FlaskClient, auth: Any, data: None) -> None:
    body = get(client, auth, f"/api/analytics/engagement/{STUDENT_A}?days=7", PARENT,
               "parent").get_json()
    assert body["total_events"] == 20
    assert body["active_days"] == 5
    assert body["current_streak"] == 5
    assert body["logins_per_week"] == 5.0
    assert body["quest_completion_rate"] == 1.0
    assert body["sessions"] == 5
    assert body["avg_session_minutes"] == 20.0
    assert body["risk"]["engagement_level"] in ("high", "medium", "low", "at_risk")
    assert body["risk"]["risk_level"] in ("low", "medium", "high", "critical")
    assert "level" not in body["risk"]  # the old name read backwards (high = low risk)
    assert [f["name"] for f in body["risk"]["factors"]] == [
        "inactivity", "low_login_frequency", "low_quest_completion", "short_sessions",
        "broken_streak"]


def test_journey_over_http(client: FlaskClient, auth: Any, data: None) -> None:
    body = get(client, auth, f"/api/analytics/journey/{STUDENT_A}", STUDENT_A).get_json()
    assert body["total_quests_completed"] == 5
    assert body["favorite_pillar"] == "stem"
    assert body["first_quest_date"] == "2026-03-06"


@pytest.mark.parametrize("kind", ["engagement", "journey"])
def test_an_id_with_no_events_says_it_is_unknown(client: FlaskClient, auth: Any, data: None,
                                                kind: str) -> None:
    """Zeros for a mistyped id must not read as an idle student: "known" tells them apart."""
    nobody = uuid.UUID("00000000-0000-4000-8000-00000000dead")
    unknown = get(client, auth, f"/api/analytics/{kind}/{nobody}", ADMIN, "admin").get_json()
    assert unknown["known"] is False
    found = get(client, auth, f"/api/analytics/{kind}/{STUDENT_A}", ADMIN, "admin").get_json()
    assert found["known"] is True


def test_event_counts_student_sees_only_their_own(client: FlaskClient, auth: Any,
                                                  data: None) -> None:
    mine = get(client, auth, "/api/analytics/event-counts?days=7", STUDENT_A).get_json()
    assert mine["total"] == 20 and mine["counts"]["quest"] == 10
    everyone = get(client, auth, "/api/analytics/event-counts?days=7", ADMIN, "admin").get_json()
    assert everyone["total"] == 23  # + the parent's event, the landing visit, the conversion
    parent = get(client, auth, "/api/analytics/event-counts?days=7", PARENT, "parent").get_json()
    assert parent["total"] == 21  # their own event and their student's (RLS)
    b = get(client, auth, "/api/analytics/event-counts?days=7", STUDENT_B).get_json()
    assert b["total"] == 0


def test_at_risk_students_threshold_and_order(client: FlaskClient, auth: Any, data: None) -> None:
    everyone = get(client, auth, "/api/analytics/at-risk-students?threshold=0", ADMIN,
                   "admin").get_json()
    assert [s["user_id"] for s in everyone["students"]] == [str(STUDENT_B), str(STUDENT_A)]
    scores = [s["score"] for s in everyone["students"]]
    assert scores == sorted(scores, reverse=True)
    flagged = get(client, auth, "/api/analytics/at-risk-students", ADMIN, "admin").get_json()
    assert [s["user_id"] for s in flagged["students"]] == [str(STUDENT_B)]
    assert flagged["students"][0]["engagement_level"] == "at_risk"
    assert flagged["students"][0]["risk_level"] == "critical"  # the same score, read as risk
    assert flagged["threshold"] == 0.7 and flagged["students_scored"] == 2


def test_at_risk_students_use_todays_stored_assessments(
        client: FlaskClient, auth: Any, data: None, conn: psycopg.Connection[Any]) -> None:
    live = get(client, auth, "/api/analytics/at-risk-students?threshold=0", ADMIN,
               "admin").get_json()
    assert live["source"] == "live"
    store_assessments(conn, score_students(conn, now=NOW, history_days=HISTORY_DAYS), now=NOW)
    stored = get(client, auth, "/api/analytics/at-risk-students?threshold=0", ADMIN,
                 "admin").get_json()
    assert stored["source"] == "stored" and stored["computed_at"] == NOW.isoformat()
    keys = ("user_id", "score", "risk_level", "engagement_level", "factors")
    assert [tuple(s[k] for k in keys) for s in stored["students"]] \
        == [tuple(s[k] for k in keys) for s in live["students"]]
    forced = get(client, auth, "/api/analytics/at-risk-students?threshold=0&live=true", ADMIN,
                 "admin").get_json()
    assert forced["source"] == "live"
    other_window = get(client, auth, "/api/analytics/at-risk-students?days=7", ADMIN,
                       "admin").get_json()
    assert other_window["source"] == "live"  # stored ones were made with a 30-day window
    limited = get(client, auth, "/api/analytics/at-risk-students?threshold=0&limit=1", ADMIN,
                  "admin").get_json()
    assert (limited["count"], len(limited["students"])) == (2, 1)


def test_admin_summaries_over_http(client: FlaskClient, auth: Any, data: None) -> None:
    quests = get(client, auth, "/api/analytics/popular-quests?limit=2", ADMIN, "admin").get_json()
    assert [q["popularity"] for q in quests["quests"]] == [7, 7]  # 2·1 + 5·1 each
    errors = get(client, auth, "/api/analytics/errors", ADMIN, "admin").get_json()
    assert errors["total_errors"] == 1 and errors["error_counts_by_type"]["api_error"] == 1
    attribution = get(client, auth, "/api/analytics/attribution", ADMIN, "admin").get_json()
    assert attribution["campaigns"][0]["campaign"] == "spring"
    assert attribution["attributed_conversions"] == 1


def test_page_views_over_http_identical_after_rollup(client: FlaskClient, auth: Any, data: None,
                                                     conn: psycopg.Connection[Any]) -> None:
    before = get(client, auth, "/api/analytics/page-views?days=7", ADMIN, "admin").get_json()
    assert before["total_views"] == 5 and before["days_from_rollup"] == 0
    for day in days_to_roll(conn, now=NOW, lookback_days=60):
        roll_up_day(conn, day)
    after = get(client, auth, "/api/analytics/page-views?days=7", ADMIN, "admin").get_json()
    assert after["days_from_rollup"] == 6  # 03-04 … 03-09; today is live
    assert after["pages"] == before["pages"]


NONSENSE = [
    "/api/analytics/page-views?days=0", "/api/analytics/page-views?days=366",
    "/api/analytics/page-views?days=abc", "/api/analytics/page-views?days=1.5",
    "/api/analytics/popular-quests?limit=0", "/api/analytics/popular-quests?limit=101",
    "/api/analytics/at-risk-students?threshold=1.5",
    "/api/analytics/at-risk-students?threshold=nan",
    "/api/analytics/at-risk-students?threshold=-0.1",
    "/api/analytics/engagement/not-a-uuid", "/api/analytics/journey/123",
    f"/api/analytics/engagement/urn:uuid:{STUDENT_A}", f"/api/analytics/journey/{STUDENT_A.hex}",
    "/api/analytics/errors?days=-1", "/api/analytics/event-counts?days=99999999999999",
    "/api/analytics/at-risk-students?live=maybe", "/api/analytics/at-risk-students?limit=0",
]


def test_nonsense_parameters_get_400(client: FlaskClient, auth: Any) -> None:
    for query in NONSENSE:
        answer = get(client, auth, query, ADMIN, "admin")
        assert answer.status_code == 400, query
        assert answer.get_json()["error"]


def test_answers_name_the_risk_parameter_set(client: FlaskClient, auth: Any, data: None,
                                             conn: psycopg.Connection[Any]) -> None:
    before = get(client, auth, "/api/analytics/at-risk-students", ADMIN, "admin").get_json()
    assert before["parameter_set"] == {"id": None, "source": "settings", "fitted_at": None,
                                       "validation_auc": None,
                                       "validation_auc_among_classmates": None}
    weights = {"inactivity_weight": 0.0, "login_weight": 0.0, "quest_weight": 0.0,
               "session_weight": 0.0, "streak_weight": 1.0}
    set_id = conn.execute(
        "INSERT INTO risk_parameter_sets (params, fitted_at, outcome, fit_at, validate_at,"
        " validated_until, validation, active) VALUES (%s, now(), 'course_withdrawn', now(),"
        " now(), now(), '{\"auc\": 0.71}', true) RETURNING id",
        (psycopg.types.json.Jsonb(weights),)).fetchone()[0]
    after = get(client, auth, "/api/analytics/at-risk-students?threshold=0", ADMIN,
                "admin").get_json()
    assert after["parameter_set"]["id"] == set_id
    assert after["parameter_set"]["validation_auc"] == 0.71
    assert {f["name"] for s in after["students"] for f in s["factors"]} == {"broken_streak"}
    engagement = get(client, auth, f"/api/analytics/engagement/{STUDENT_A}", ADMIN,
                     "admin").get_json()
    assert engagement["risk_parameter_set"]["id"] == set_id


def test_an_email_in_a_campaign_link_is_never_answered_or_rolled_up(
        client: FlaskClient, auth: Any, conn: psycopg.Connection[Any]) -> None:
    """UTM values are client text; a campaign link can carry an address. Neither the
    attribution answer nor campaign_daily (kept two years) may hold it."""
    for campaign in ("ann.lee@example.org", "bob@example.org"):
        add_event(conn, "landing_visit", NOW - timedelta(days=2), network_hash=b"n" * 16,
                  utm_campaign=campaign, utm_source="mail")
    with freeze_time(NOW):
        answer = get(client, auth, "/api/analytics/attribution?days=7", ADMIN,
                     "admin").get_json()
    assert [(c["campaign"], c["visits"]) for c in answer["campaigns"]] == [
        ("[email]", 2)]
    for day in days_to_roll(conn, now=NOW, lookback_days=30):
        roll_up_day(conn, day)
    rolled = conn.execute("SELECT campaign, visits FROM campaign_daily").fetchall()
    assert rolled == [("[email]", 2)]
