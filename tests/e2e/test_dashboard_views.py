"""The dashboard's four views in Debian's headless Chromium, against `waymark demo` data.

One database per module is loaded by the real `waymark demo` command (150k events, classes,
parents, scores); the real app serves the page and the API on a free port. Each role's view
is opened at 1440 and 390 px; every time: the charts were given the API's data (read back
from ``window.waymarkCharts``, what the page passed to Chart.js), no console error (a CSP
violation is one), no horizontal overflow, and axe-core finds no serious or critical
violation. A screenshot of each view and width is written to ``e2e-screenshots/`` (or
``WAYMARK_E2E_SCREENSHOTS``) for a person to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dashboard_support import (
    ROOT,
    WIDTHS,
    api,
    charts,
    check_page,
    chromium,
    open_view,
    serving,
    skip_without_a_browser,
)
from flask import Flask

from backend import create_app
from backend.services.analytics.risk import parameter_sets
from tests.conftest import TEST_JWT_SECRET, AuthTokens, _scratch_database


@dataclass
class Demo:
    """The served app and the demo's people, found in the database."""

    base: str
    db_url: str
    parent: str
    children: set[str]
    student: str
    foreign_student: str
    teacher: str  # teaches the 4-student club (suppressed figures) and a full class
    admin: str = "213af208-3f51-4bb8-a94f-8248c6a36d33"
    auth: AuthTokens = field(default_factory=AuthTokens)


def _one(db_url: str, query: str) -> Any:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None, query
    return row


@pytest.fixture(scope="module")
def demo(pg_server_url: str, template_db: str) -> Iterator[Demo]:
    skip_without_a_browser()
    for db_url in _scratch_database(pg_server_url, template_db):
        env = {**os.environ, "DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": TEST_JWT_SECRET}
        subprocess.run([str(Path(sys.executable).parent / "waymark"), "demo"], env=env,
                       check=True, capture_output=True, cwd=ROOT)
        parent, children = _one(db_url, """
            SELECT parent_id::text, array_agg(student_id::text) FROM guardian_links
            GROUP BY parent_id HAVING count(*) >= 2 ORDER BY parent_id LIMIT 1""")
        student, foreign = _one(db_url, """
            SELECT min(student_id::text), max(student_id::text) FROM guardian_links""")
        (teacher,) = _one(db_url, """
            SELECT m.user_id::text FROM class_memberships m JOIN classes c USING (class_id)
            WHERE m.member_role = 'teacher' AND c.name = 'Robotics club' LIMIT 1""")
        app: Flask = create_app({"WAYMARK_DATABASE_URL": db_url,
                                 "WAYMARK_JWT_SECRET": TEST_JWT_SECRET,
                                 "WAYMARK_POOL_MAX_SIZE": 6})
        with serving(app) as base:
            yield Demo(base, db_url, parent, set(children), student, foreign, teacher)


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_admin_view_charts_tables_live_counter_and_student_detail(browser: Any, demo: Demo) -> None:
    token = demo.auth.token(demo.admin, "admin")
    activity = api(demo, token, "/activity?days=30")
    quests = api(demo, token, "/popular-quests?days=30&limit=8")["quests"]
    referred = api(demo, token, "/sources?days=30")["sources"]
    for width in WIDTHS:
        visit = open_view(browser, demo, token, width)
        page = visit.page
        drawn = charts(page)
        # The activity chart was given the API's daily figures, and they are not all zero.
        lines = {d["label"]: d["data"] for d in drawn["activity"]["datasets"]}
        assert lines["Visitors"] == [d["visitors"] for d in activity["series"]]
        assert lines["Page views"] == [d["page_views"] for d in activity["series"]]
        assert sum(lines["Sessions"]) > 0
        funnel = {d["label"]: d["data"] for d in drawn["quests"]["datasets"]}
        assert funnel["Completed"] == [q["completions"] for q in quests]
        assert all(v >= s >= c for v, s, c in zip(funnel["Viewed"], funnel["Started"],
                                                 funnel["Completed"], strict=True))
        assert sum(sum(d["data"]) for d in drawn["risk"]["datasets"]) > 0
        assert sum(drawn["devices"]["datasets"][0]["data"]) > 0
        # Sources: the API's top hosts in its order, direct first by name, a real referrer
        assert drawn["sources"]["labels"] == [s["source"] or "Direct / none"
                                              for s in referred[:8]]
        assert drawn["sources"]["datasets"][0]["data"] == [s["sessions"] for s in referred[:8]]
        assert "instagram.com" in drawn["sources"]["labels"]
        pages = page.inner_text("section[aria-label='Top pages'] table")
        assert "/quests" in pages and "/leaderboard" in pages  # page names, not ids
        at_risk_card = page.inner_text("section[aria-label='Students at risk']")
        assert "Page 1 of" in at_risk_card
        # which weights made the scores, in words: the demo's hand-chosen set
        assert "Weights chosen by hand for the demo school" in at_risk_card
        page.wait_for_selector("#live-count")
        check_page(visit, "admin", width)
        page.close()

    # Sorting, paging and a click through to one student's detail.
    visit = open_view(browser, demo, token, 1440)
    page = visit.page
    at_risk = page.locator("section[aria-label='Students at risk']")
    first = at_risk.locator("tbody tr th").first.inner_text()
    at_risk.locator("th button", has_text="Risk").click()  # ascending now
    assert at_risk.locator("tbody tr th").first.inner_text() != first
    with page.expect_response(lambda r: "/api/analytics/live" in r.url, timeout=15000):
        pass  # the live counter polls again without a reload
    at_risk.locator("tbody tr th a").first.click()
    page.wait_for_selector("body[data-ready=true] #detail", state="attached")
    assert page.locator("#detail .factors li").count() >= 3
    # Each factor in the API's words, the class-relative ones of the demo's set included.
    shown = page.url.split("/student/")[1]
    engagement = api(demo, token, f"/engagement/{shown}?days=30")
    assert engagement["risk_parameter_set"]["source"] == "waymark demo"
    factors = {f["name"]: f["explanation"] for f in engagement["risk"]["factors"]}
    assert {"days_behind_cohort", "below_cohort_activity", "below_cohort_scores"} <= set(factors)
    items = page.eval_on_selector_all("#detail .factors li", "s => s.map(e => e.textContent)")
    assert sorted(factors.values()) == sorted(i.split(": ", 1)[1].split(" — adds")[0]
                                              for i in items)
    assert any("the class's median" in i for i in items), "\n".join(items)
    assert "chosen by hand for the demo" in page.inner_text("#detail .trust")
    history = charts(page)["risk-history"]
    assert len(history["labels"]) >= 4  # the demo's weekly past scores and today's
    check_page(visit, "admin-student-detail", 1440)
    page.close()
    # The same detail on a phone: the sentences wrap, nothing overflows sideways.
    visit = open_view(browser, demo, token, 390, view=f"/student/{shown}")
    assert visit.page.locator("#detail .factors li").count() == len(factors)
    check_page(visit, "admin-student-detail", 390)
    visit.page.close()


def test_the_at_risk_card_says_how_well_a_fitted_set_was_checked(browser: Any,
                                                                 demo: Demo) -> None:
    """A set `waymark risk-calibrate` adopted: the card names when it was fitted and puts its
    held-out AUC in words; rolled back afterwards, the demo's set is active again."""
    now = datetime.now(UTC)
    with psycopg.connect(demo.db_url, autocommit=True) as conn:
        demo_params = parameter_sets.active_set(conn)
        assert demo_params is not None
        fitted = parameter_sets.activate(
            conn, demo_params.params, now=now, outcome="course_withdrawn",
            fit_at=now - timedelta(days=60), validate_at=now - timedelta(days=30),
            validated_until=now, validation={"auc": 0.7123, "auc_among_classmates": 0.6812})
    try:
        visit = open_view(browser, demo, demo.auth.token(demo.admin, "admin"), 1440)
        note = visit.page.inner_text("section[aria-label='Students at risk'] .trust")
        assert f"(set {fitted})" in note and "71 % of the time" in note, note
        assert "than a classmate who stayed 68 % of the time" in note, note
        check_page(visit, "admin-fitted-set", 1440)
        visit.page.close()
    finally:
        with psycopg.connect(demo.db_url, autocommit=True) as conn:
            assert parameter_sets.roll_back(conn, now=now)[0] == fitted


def test_a_student_who_withdrew_is_shown_as_having_left(browser: Any, demo: Demo) -> None:
    """The demo's drifting students withdraw; their detail says so instead of "not assessed
    yet", with a grey light, and the at-risk card does not list them."""
    (student, withdrawn_at) = _one(demo.db_url, """
        SELECT user_id::text, max(occurred_at) FROM user_activity_events
        WHERE event_type = 'course_withdrawn' GROUP BY user_id ORDER BY 1 LIMIT 1""")
    token = demo.auth.token(demo.admin, "admin")
    listed = {s["user_id"] for s in api(demo, token, "/at-risk-students?threshold=0&limit=500")[
        "students"]}
    assert listed and student not in listed
    visit = open_view(browser, demo, token, 1440, view=f"/student/{student}")
    rhythm = visit.page.inner_text("#detail .rhythm")
    assert "Left the course" in rhythm and "Withdrew on" in rhythm, rhythm
    assert "grey" in visit.page.get_attribute("#detail .rhythm .light", "class")
    assert str(withdrawn_at.year) in rhythm
    check_page(visit, "admin-student-left", 1440)
    visit.page.close()


def test_teacher_sees_their_class_with_suppression_markers(browser: Any, demo: Demo) -> None:
    token = demo.auth.token(demo.teacher, "teacher")
    for width in WIDTHS:
        visit = open_view(browser, demo, token, width)
        page = visit.page
        mine = api(demo, token, "/classes")["classes"]
        names = page.eval_on_selector_all("section.class h2", "s => s.map(e => e.textContent)")
        assert sorted(names) == sorted(k["name"] for k in mine) and "Robotics club" in names
        club = next(k for k in mine if k["name"] == "Robotics club")
        full = next(k for k in mine if k["name"] != "Robotics club")
        # 4 students < 5: the club's aggregates are hidden and say so, instead of numbers.
        club_card = page.locator("section.class", has_text="Robotics club")
        assert "hidden" in club_card.locator(".suppressed").first.inner_text()
        drawn = charts(page)
        assert f"class-{club['class_id']}" not in drawn  # every day hidden: no chart at all
        assert club_card.locator("canvas").count() == 0
        assert club_card.locator(".suppressed").count() >= 3  # activity, risk, quests
        summary = api(demo, token, f"/classes/{full['class_id']}/summary?days=30&threshold=0.6")
        assert drawn[f"class-{full['class_id']}"]["datasets"][0]["data"] == [
            d["active_students"] for d in summary["daily"]]
        # Which weights made the class's scores, under its students at risk.
        assert summary["parameter_set"]["source"] == "waymark demo"
        full_card = page.locator("section.class", has_text=full["name"])
        assert "chosen by hand for the demo" in full_card.locator(".trust").inner_text()
        # The admin's cut (0.6), so a teacher and an admin list the same students of a class.
        asked = [u for u, _ in visit.responses if "/summary?" in u]
        assert asked and all("threshold=0.6" in u for u in asked), asked
        assert "risk score 0.6 or more" in full_card.inner_text()
        listed = full_card.locator("table tbody tr th").all_inner_texts()
        assert len(listed) == len(summary["at_risk"])
        check_page(visit, "teacher", width)
        page.close()


def test_parent_sees_exactly_their_children_with_rhythm_light(browser: Any, demo: Demo) -> None:
    token = demo.auth.token(demo.parent, "parent")
    for width in WIDTHS:
        visit = open_view(browser, demo, token, width)
        page = visit.page
        shown = set(page.eval_on_selector_all("section.learner", "s => s.map(e => e.dataset.userId)"))
        assert shown == demo.children
        lights = page.eval_on_selector_all(".rhythm .light", "s => s.map(e => e.className)")
        assert len(lights) == len(demo.children)
        assert all(any(c in cls for c in ("green", "yellow", "red", "grey")) for cls in lights)
        reasons = page.eval_on_selector_all(".rhythm .reason", "s => s.map(e => e.textContent)")
        assert all(len(r) > 10 for r in reasons), reasons
        drawn = charts(page)
        for child in demo.children:
            journey = api(demo, token, f"/journey/{child}")
            if journey["xp_by_pillar"]:
                assert sum(drawn[f"xp-{child}"]["datasets"][0]["data"]) == \
                    sum(journey["xp_by_pillar"].values())
        check_page(visit, "parent", width)
        page.close()


def test_student_sees_only_themself_and_is_refused_another_students_detail(
        browser: Any, demo: Demo) -> None:
    token = demo.auth.token(demo.student, "student")
    for width in WIDTHS:
        visit = open_view(browser, demo, token, width)
        page = visit.page
        shown = page.eval_on_selector_all("section.learner", "s => s.map(e => e.dataset.userId)")
        assert shown == [demo.student]
        assert "Students at risk" not in page.inner_text("main")
        assert sum(charts(page)["my-activity"]["datasets"][0]["data"]) > 0
        check_page(visit, "student", width)
        page.close()

        visit = open_view(browser, demo, token, width, view=f"/student/{demo.foreign_student}")
        page = visit.page
        refused = [s for url, s in visit.responses if f"/engagement/{demo.foreign_student}" in url]
        assert refused == [403]
        assert "Access denied" in page.inner_text("#detail")
        visit.console_errors = [e for e in visit.console_errors if "403" not in e]  # the fetch's own log line
        check_page(visit, "student-foreign-detail", width)
        page.close()
