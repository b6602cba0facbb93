"""What the dashboard reads besides the older endpoints: activity over time, the live
counter, risk over time, recent activity, and ``?format=csv`` on the table endpoints."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from analytics_support import add_event
from flask.testing import FlaskClient
from freezegun import freeze_time

from backend.routes.tables import cell

STUDENT = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
PARENT = uuid.UUID("00000000-0000-4000-8000-0000000000c3")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000d4")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
STATIC = Path(__file__).resolve().parents[2] / "backend" / "static"


@pytest.fixture
def data(conn: psycopg.Connection[Any]) -> None:
    """Today: STUDENT twice in one session (desktop) and an anonymous visitor (mobile);
    3 days ago: STUDENT again; 10 days ago (the previous 7-day period): OTHER, who is
    assigned a quest today (an event recorded for them, no visit of theirs)."""
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, STUDENT))
    s1, s2, s3, s4 = (uuid.UUID(int=n) for n in range(1, 5))
    add_event(conn, "page_view", NOW - timedelta(minutes=2), user_id=STUDENT, session_id=s1,
              page_path="/quests", device_type="desktop")
    add_event(conn, "quest_completed", NOW - timedelta(minutes=1), user_id=STUDENT,
              session_id=s1, device_type="desktop",
              data={"quest_id": "q1", "quest_title": "Build a rain gauge", "pillar": "stem",
                    "xp": 50})
    add_event(conn, "page_view", NOW - timedelta(minutes=30), visitor_hash=b"v" * 16,
              session_id=s2, page_path="=cmd|' /C calc'!A0", device_type="mobile")
    add_event(conn, "page_view", NOW - timedelta(days=3), user_id=STUDENT, session_id=s3,
              page_path="/", device_type="desktop")
    add_event(conn, "page_view", NOW - timedelta(days=10), user_id=OTHER, session_id=s4,
              page_path="/", device_type="desktop")
    add_event(conn, "quest_assigned", NOW - timedelta(minutes=3), user_id=OTHER,
              source="server", data={"quest_id": "q2", "due_at": "2026-03-17T12:00:00Z"})
    for day, level in ((1, "high"), (1, "at_risk"), (0, "at_risk"), (0, "low")):
        conn.execute(
            "INSERT INTO learning_journey_events (user_id, occurred_at, milestone, risk_score,"
            " engagement_level) VALUES (%s, %s, 'risk_assessment', 0.5, %s)",
            (uuid.uuid4(), NOW - timedelta(days=day, hours=1), level))


def get(client: FlaskClient, auth: Any, path: str, user: uuid.UUID = ADMIN,
        role: str = "admin") -> Any:
    with freeze_time(NOW):
        return client.get(f"/api/analytics{path}", headers=auth.header(user, role))


def test_activity_counts_days_periods_and_devices(client: FlaskClient, auth: Any,
                                                  data: None) -> None:
    body = get(client, auth, "/activity?days=7").get_json()
    assert [d["day"] for d in body["series"]][0] == "2026-03-04"
    assert len(body["series"]) == 7  # every day listed, zeros included
    today = body["series"][-1]
    assert today == {"day": "2026-03-10", "visitors": 2, "sessions": 2, "page_views": 2}
    assert body["series"][-4] == {"day": "2026-03-07", "visitors": 1, "sessions": 1,
                                  "page_views": 1}
    assert body["current"] == {"visitors": 2, "sessions": 3, "page_views": 3}
    assert body["previous"]["visitors"] == 1 and body["previous"]["last_day"] == "2026-03-03"
    assert body["devices"] == [{"device_type": "desktop", "sessions": 2},
                               {"device_type": "mobile", "sessions": 1}]


def test_live_counter_counts_the_last_five_minutes_only(client: FlaskClient, auth: Any,
                                                        data: None) -> None:
    body = get(client, auth, "/live").get_json()
    # three events (OTHER's assignment is one), one visitor (it is no visit of OTHER's)
    assert (body["events"], body["visitors"], body["minutes"]) == (3, 1, 5)


def test_risk_distribution_per_day_in_risk_levels(client: FlaskClient, auth: Any,
                                                  data: None) -> None:
    body = get(client, auth, "/risk-distribution?days=7").get_json()
    assert body["levels"] == ["low", "medium", "high", "critical"]
    assert body["series"] == [
        {"day": "2026-03-09", "low": 1, "medium": 0, "high": 0, "critical": 1},
        {"day": "2026-03-10", "low": 0, "medium": 0, "high": 1, "critical": 1}]


@pytest.mark.parametrize("path", ["/activity", "/live", "/risk-distribution"])
def test_admin_only_answers_refuse_others(client: FlaskClient, auth: Any, data: None,
                                          path: str) -> None:
    assert get(client, auth, path, STUDENT, "student").status_code == 403
    assert get(client, auth, path, PARENT, "parent").status_code == 403


def test_recent_activity_for_self_and_parent_not_for_others(client: FlaskClient, auth: Any,
                                                            data: None) -> None:
    mine = get(client, auth, f"/recent/{STUDENT}", STUDENT, "student").get_json()
    assert [(a["event_type"], a["quest_title"], a["xp"]) for a in mine["activity"]] == [
        ("quest_completed", "Build a rain gauge", 50)]
    assert get(client, auth, f"/recent/{STUDENT}", PARENT, "parent").status_code == 200
    refused = get(client, auth, f"/recent/{STUDENT}", OTHER, "student")
    assert refused.status_code == 403 and "activity" not in refused.get_json()


def test_csv_is_the_same_table_with_formulas_defused(client: FlaskClient, auth: Any,
                                                     data: None) -> None:
    response = get(client, auth, "/page-views?days=7&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="page-views.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    as_json = get(client, auth, "/page-views?days=7").get_json()["pages"]
    assert len(rows) == len(as_json) == 3
    paths = {r["page_path"] for r in rows}
    assert "/quests" in paths and "'=cmd|' /C calc'!A0" in paths  # text, not a formula
    activity = list(csv.DictReader(io.StringIO(
        get(client, auth, "/activity?days=7&format=csv").get_data(as_text=True))))
    assert activity[-1] == {"day": "2026-03-10", "visitors": "2", "sessions": "2",
                            "page_views": "2"}


@pytest.mark.parametrize("path", ["/page-views", "/popular-quests", "/errors", "/attribution",
                                  "/at-risk-students", "/students", "/activity",
                                  "/risk-distribution"])
def test_every_table_endpoint_answers_csv_and_refuses_unknown_formats(
        client: FlaskClient, auth: Any, data: None, path: str) -> None:
    assert get(client, auth, f"{path}?format=csv").mimetype == "text/csv"
    bad = get(client, auth, f"{path}?format=xml")
    assert bad.status_code == 400 and "format" in bad.get_json()["error"]


def test_csv_cells_read_like_the_page() -> None:
    factors = [{"name": "inactivity", "contribution": 0.4, "value": 1.0},
               {"name": "short_sessions", "contribution": 0.071, "value": 0.7}]
    assert cell(factors) == "inactivity 0.40; short sessions 0.07"
    assert cell([{"class_id": "x", "name": "Year 7"}]) == "Year 7"
    assert cell(None) == "" and cell(True) == "true" and cell("+1") == "'+1"


def test_dashboard_page_is_locked_down_and_ships_its_chart_library(client: FlaskClient) -> None:
    response = client.get("/dashboard")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe" not in policy  # neither unsafe-inline nor unsafe-eval
    page = response.get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page  # nothing inline
    assert "http://" not in page and "https://" not in page  # no CDN
    for asset in ("dashboard.js", "dashboard.css", "vendor/chartjs/chart.umd.min.js"):
        served = client.get(f"/dashboard/static/{asset}")
        assert served.status_code == 200, asset
        assert served.get_data() == (STATIC / asset).read_bytes()
    assert (STATIC / "vendor/chartjs/LICENSE.md").read_text().startswith("The MIT License")
    version = (STATIC / "vendor/chartjs/VERSION").read_text()
    assert "Chart.js 4.6.2" in version
    assert json.dumps("eval(") not in (STATIC / "dashboard.js").read_text()


def test_sources_count_sessions_by_referring_host_with_direct_and_self_referrals(
        client: FlaskClient, auth: Any, conn: psycopg.Connection[Any]) -> None:
    """Only a referrer's host counts, without www.; no referrer and the site's own pages
    (the request's host, here "localhost") are direct; a student may not read it."""
    sessions = [uuid.UUID(int=n) for n in range(10, 17)]
    referrers = ["https://www.google.com/search", "https://google.com/", "https://Instagram.com/p",
                 None, "http://localhost/quests", "https://www.google.com/", None]
    for index, (session, referrer) in enumerate(zip(sessions, referrers, strict=True)):
        add_event(conn, "page_view", NOW - timedelta(hours=index), session_id=session,
                  visitor_hash=bytes([index]) * 16, referrer=referrer, page_path="/")
    # a second event of the first session, from elsewhere: the session counts once
    add_event(conn, "page_view", NOW - timedelta(minutes=5), session_id=sessions[0],
              visitor_hash=b"\x00" * 16, referrer=None, page_path="/b")
    # older than the period: not counted
    add_event(conn, "page_view", NOW - timedelta(days=40), session_id=uuid.UUID(int=99),
              visitor_hash=b"o" * 16, referrer="https://bing.com/", page_path="/")
    body = get(client, auth, "/sources?days=30").get_json()
    assert body["sources"] == [
        {"source": None, "sessions": 3},  # a tie: direct first
        {"source": "google.com", "sessions": 3},
        {"source": "instagram.com", "sessions": 1},
    ]
    with freeze_time(NOW):
        csv_answer = client.get("/api/analytics/sources?days=30&format=csv",
                                headers=auth.header(ADMIN, "admin"))
    assert csv_answer.status_code == 200
    assert [r["source"] for r in csv.DictReader(io.StringIO(csv_answer.get_data(as_text=True)))
            ] == ["", "google.com", "instagram.com"]
    assert get(client, auth, "/sources", STUDENT, "student").status_code == 403
