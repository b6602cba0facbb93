"""Teachers and classes over HTTP: /students, /classes, class summaries, admin writes.

Every role asks every endpoint; a refusal is a 403 whose body is only ``{"error": ...}``.
Suppression is checked at the edge: a class of 5 students shows its aggregates to its
teacher, a class of 4 does not (WAYMARK_MIN_GROUP_SIZE defaults to 5).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from analytics_support import HISTORY_DAYS, add_event
from flask.testing import FlaskClient
from freezegun import freeze_time

from backend import create_app
from backend.services.analytics.risk import (
    RiskParams,
    parameter_sets,
    score_students,
    store_assessments,
)
from backend.services.privacy import retention

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _id(tag: str) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{tag:0>12}")


MATHS = uuid.UUID("c1000000-0000-4000-8000-000000000001")  # 5 students: shown
ART = uuid.UUID("c2000000-0000-4000-8000-000000000002")    # 4 students: suppressed
MATHS_STUDENTS = [_id(f"a{n}") for n in range(1, 6)]
ART_STUDENTS = [_id(f"b{n}") for n in range(1, 5)]
T_MATHS, T_ART = _id("7e01"), _id("7e02")
PARENT = _id("9a01")          # parent of MATHS_STUDENTS[0]
ADMIN = _id("ad01")
LONER = _id("10e1")           # a student in no class, with events
ALL_STUDENTS = [*MATHS_STUDENTS, *ART_STUDENTS, LONER]


@pytest.fixture
def school(conn: psycopg.Connection[Any]) -> None:
    """Two classes with a teacher each; students active on some days; stored risk today
    and 7 days ago; a parent and both teachers have events of their own."""
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Maths 7A'), (%s, 'Art 8B')",
                 (MATHS, ART))
    rows = [(MATHS, s, "student") for s in MATHS_STUDENTS] + \
           [(ART, s, "student") for s in ART_STUDENTS] + \
           [(MATHS, T_MATHS, "teacher"), (ART, T_ART, "teacher")]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO class_memberships (class_id, user_id, member_role) "
                        "VALUES (%s, %s, %s)", rows)
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, MATHS_STUDENTS[0]))
    for i, student in enumerate(ALL_STUDENTS):
        active_days = 1 + i % 5  # a1 one day … a5 five days; b1 one day …
        for d in range(active_days):
            at = NOW - timedelta(days=d, hours=2)
            add_event(conn, "login_success", at, user_id=student)
            add_event(conn, "quest_started", at + timedelta(minutes=1), user_id=student,
                      data={"quest_id": "fractions", "quest_title": "Fractions"})
            if d % 2 == 0:
                add_event(conn, "quest_completed", at + timedelta(minutes=9), user_id=student,
                          data={"quest_id": "fractions", "pillar": "stem", "xp": 10})
        add_event(conn, "login_success", NOW - timedelta(days=10 + i % 3), user_id=student)
    for someone in (PARENT, T_MATHS, T_ART):
        add_event(conn, "login_success", NOW - timedelta(hours=1), user_id=someone)
    week_ago = NOW - timedelta(days=7)
    store_assessments(conn, score_students(conn, now=week_ago,
                                           history_days=HISTORY_DAYS), now=week_ago)
    store_assessments(conn, score_students(conn, now=NOW, history_days=HISTORY_DAYS), now=NOW)


def get(client: FlaskClient, auth: Any, path: str, user: uuid.UUID | None,
        role: str = "student") -> Any:
    with freeze_time(NOW):
        return client.get(path, headers=auth.header(user, role) if user else {})


def ids(body: dict[str, Any]) -> list[str]:
    return [s["user_id"] for s in body["students"]]


def refused(answer: Any) -> bool:
    return answer.status_code == 403 and set(answer.get_json()) == {"error"}


# -------------------------------------------------------------------- /students


def test_students_is_who_each_role_may_see(client: FlaskClient, auth: Any, school: None) -> None:
    admin = get(client, auth, "/api/analytics/students?limit=500", ADMIN, "admin").get_json()
    assert sorted(ids(admin)) == sorted(map(str, ALL_STUDENTS))  # no parent, no teacher
    assert admin["total"] == len(ALL_STUDENTS)
    maths = get(client, auth, "/api/analytics/students", T_MATHS, "teacher").get_json()
    assert sorted(ids(maths)) == sorted(map(str, MATHS_STUDENTS))
    assert {c["name"] for s in maths["students"] for c in s["classes"]} == {"Maths 7A"}
    art = get(client, auth, "/api/analytics/students", T_ART, "teacher").get_json()
    assert sorted(ids(art)) == sorted(map(str, ART_STUDENTS))
    parent = get(client, auth, "/api/analytics/students", PARENT, "parent").get_json()
    assert ids(parent) == [str(MATHS_STUDENTS[0])]
    me = get(client, auth, "/api/analytics/students", ART_STUDENTS[1]).get_json()
    assert ids(me) == [str(ART_STUDENTS[1])]
    assert me["students"][0]["classes"] == [{"class_id": str(ART), "name": "Art 8B"}]
    stranger = get(client, auth, "/api/analytics/students", _id("5a"), "teacher").get_json()
    assert stranger == {"students": [], "total": 0, "limit": 50, "offset": 0}
    assert get(client, auth, "/api/analytics/students", None).status_code == 401


def test_students_carry_risk_trend_and_last_activity(client: FlaskClient, auth: Any,
                                                     school: None,
                                                     conn: psycopg.Connection[Any]) -> None:
    body = get(client, auth, "/api/analytics/students", T_MATHS, "teacher").get_json()
    scores = [s["risk_score"] for s in body["students"]]
    assert scores == sorted(scores, reverse=True)  # most at risk first
    stored = {str(r[0]): (round(r[1], 4), r[2]) for r in conn.execute(
        "SELECT user_id, risk_score, engagement_level FROM learning_journey_events "
        "WHERE milestone = 'risk_assessment' AND occurred_at = %s", (NOW,))}
    week_ago = {str(r[0]): round(r[1], 4) for r in conn.execute(
        "SELECT user_id, risk_score FROM learning_journey_events "
        "WHERE milestone = 'risk_assessment' AND occurred_at = %s", (NOW - timedelta(days=7),))}
    levels = {"high": "low", "medium": "medium", "low": "high", "at_risk": "critical"}
    for s in body["students"]:
        assert (s["risk_score"], s["engagement_level"]) == stored[s["user_id"]]
        assert s["risk_level"] == levels[s["engagement_level"]]
        assert s["assessed_at"] == NOW.isoformat()
        assert s["risk_score_7d_ago"] == week_ago.get(s["user_id"])
        change = s["risk_score"] - s["risk_score_7d_ago"]
        assert s["trend"] == ("rising" if change > 0.05 else "falling" if change < -0.05
                              else "steady")
    assert {s["trend"] for s in body["students"]} == {"falling"}  # inactive then, active now
    a1 = next(s for s in body["students"] if s["user_id"] == str(MATHS_STUDENTS[0]))
    last = conn.execute("SELECT max(occurred_at) FROM user_activity_events WHERE user_id = %s",
                        (MATHS_STUDENTS[0],)).fetchone()
    assert last is not None and a1["last_active_at"] == last[0].isoformat()


def test_students_filters_and_paging(client: FlaskClient, auth: Any, school: None) -> None:
    by_class = get(client, auth, f"/api/analytics/students?class_id={ART}&limit=500", ADMIN,
                   "admin").get_json()
    assert sorted(ids(by_class)) == sorted(map(str, ART_STUDENTS))
    # a teacher filtering on a class they do not teach gets nobody, not an error
    other = get(client, auth, f"/api/analytics/students?class_id={ART}", T_MATHS,
                "teacher").get_json()
    assert other["students"] == [] and other["total"] == 0
    everyone = get(client, auth, "/api/analytics/students?limit=500", ADMIN, "admin").get_json()
    level = everyone["students"][0]["risk_level"]
    same = get(client, auth, f"/api/analytics/students?level={level}&limit=500", ADMIN,
               "admin").get_json()
    assert same["total"] == sum(s["risk_level"] == level for s in everyone["students"]) >= 1
    assert {s["risk_level"] for s in same["students"]} == {level}
    prefix = get(client, auth, "/api/analytics/students?q=00000000-0000-4000-8000-0000000000b",
                 ADMIN, "admin").get_json()
    assert sorted(ids(prefix)) == sorted(map(str, ART_STUDENTS))
    pages = [get(client, auth, f"/api/analytics/students?limit=4&offset={o}", ADMIN,
                 "admin").get_json() for o in (0, 4, 8, 12)]
    assert [len(p["students"]) for p in pages] == [4, 4, 2, 0]
    assert {p["total"] for p in pages} == {len(ALL_STUDENTS)}
    assert [u for p in pages for u in ids(p)] == ids(everyone)
    for bad in ("level=at_risk", "level=", "class_id=nope", "q=zz", "limit=0", "offset=-1"):
        answer = get(client, auth, f"/api/analytics/students?{bad}", ADMIN, "admin")
        assert answer.status_code == 400 and set(answer.get_json()) == {"error"}, bad


# --------------------------------------------------------------------- /classes


def test_classes_per_role(client: FlaskClient, auth: Any, school: None) -> None:
    def names(user: uuid.UUID, role: str) -> list[tuple[str, Any]]:
        body = get(client, auth, "/api/analytics/classes", user, role).get_json()
        return [(c["name"], c["student_count"]) for c in body["classes"]]

    assert names(ADMIN, "admin") == [("Art 8B", 4), ("Maths 7A", 5)]
    assert names(T_MATHS, "teacher") == [("Maths 7A", 5)]
    assert names(T_ART, "teacher") == [("Art 8B", 4)]
    assert names(PARENT, "parent") == [("Maths 7A", None)]  # no counts: not their members
    assert names(ART_STUDENTS[0], "student") == [("Art 8B", None)]
    assert names(LONER, "student") == []


# ------------------------------------------------------------ class summaries


def test_summary_for_the_teacher_of_a_class_of_five(client: FlaskClient, auth: Any,
                                                    school: None) -> None:
    body = get(client, auth, f"/api/analytics/classes/{MATHS}/summary?days=7", T_MATHS,
               "teacher").get_json()
    assert body["class"] == {"class_id": str(MATHS), "name": "Maths 7A", "student_count": 5}
    assert body["suppressed"] is False and body["min_group_size"] == 5
    assert len(body["daily"]) == 8  # (now − 7 days, now] touches 8 UTC days
    today = body["daily"][-1]
    assert today == {"day": NOW.date().isoformat(), "active_students": 5, "events": 15,
                     "suppressed": False}
    # a1..a5 were active on 1..5 days: 2 days ago only a3, a4, a5 (3 < 5) → suppressed
    two_days_ago = body["daily"][-3]
    assert two_days_ago == {"day": (NOW - timedelta(days=2)).date().isoformat(),
                            "active_students": None, "events": None, "suppressed": True}
    assert body["daily"][0]["active_students"] == 0  # nobody: zero is never suppressed
    categories = {c["category"]: c for c in body["events_by_category"]}
    assert categories["auth"]["events"] == 15 and categories["quest"]["events"] == 15 + 9
    distribution = body["risk_distribution"]
    assert sum(distribution[k] for k in ("low", "medium", "high", "critical")) == 5
    assert distribution["unscored"] == 0
    assert body["quest_completion"] == {"students_started": 5, "students_completed": 5,
                                        "completion_rate": 1.0}
    assert [q["quest_id"] for q in body["popular_quests"]] == ["fractions"]
    assert body["popular_quests"][0]["completions"] == 9
    flagged = body["at_risk"]
    assert all(s["risk_score"] >= 0.7 and s["factors"] for s in flagged)
    assert {s["user_id"] for s in flagged} <= set(map(str, MATHS_STUDENTS))


def test_summary_of_a_class_of_four_is_suppressed_for_its_teacher_not_for_admins(
        client: FlaskClient, auth: Any, school: None) -> None:
    teacher = get(client, auth, f"/api/analytics/classes/{ART}/summary?days=7", T_ART,
                  "teacher").get_json()
    marker = {"suppressed": True, "reason": "fewer than 5 students"}
    assert teacher["suppressed"] is True and teacher["class"]["student_count"] == 4
    assert all(d["suppressed"] and d["active_students"] is None for d in teacher["daily"])
    for key in ("events_by_category", "risk_distribution", "quest_completion",
                "popular_quests"):
        assert teacher[key] == marker, key
    admin = get(client, auth, f"/api/analytics/classes/{ART}/summary?days=7", ADMIN,
                "admin").get_json()
    assert admin["suppressed"] is False
    assert admin["daily"][-1]["active_students"] == 4
    assert sum(admin["risk_distribution"][k] for k in ("low", "medium", "high", "critical")) == 4


def test_min_group_size_is_a_setting(app_config: dict[str, Any], auth: Any,
                                     school: None) -> None:
    app = create_app({**app_config, "WAYMARK_MIN_GROUP_SIZE": 4})
    try:
        body = get(app.test_client(), auth, f"/api/analytics/classes/{ART}/summary?days=7",
                   T_ART, "teacher").get_json()
    finally:
        app.extensions["waymark"].close()
    assert body["suppressed"] is False and body["min_group_size"] == 4
    assert body["quest_completion"]["students_started"] == 4


def test_summary_refusals(client: FlaskClient, auth: Any, school: None) -> None:
    path = f"/api/analytics/classes/{MATHS}/summary"
    assert refused(get(client, auth, path, T_ART, "teacher"))        # another class's teacher
    assert refused(get(client, auth, path, MATHS_STUDENTS[0]))        # a student of the class
    assert refused(get(client, auth, path, PARENT, "parent"))         # a parent
    unknown = f"/api/analytics/classes/{uuid.uuid4()}/summary"
    assert refused(get(client, auth, unknown, T_MATHS, "teacher"))    # no existence leak
    assert get(client, auth, unknown, ADMIN, "admin").status_code == 404
    assert get(client, auth, path, None).status_code == 401
    assert get(client, auth, "/api/analytics/classes/x/summary", ADMIN, "admin").status_code \
        == 400


# ------------------------------------------------- the older endpoints for teachers


def test_teachers_reach_their_students_only(client: FlaskClient, auth: Any,
                                            school: None) -> None:
    mine, theirs = MATHS_STUDENTS[1], ART_STUDENTS[1]
    for endpoint in ("engagement", "journey"):
        assert get(client, auth, f"/api/analytics/{endpoint}/{mine}", T_MATHS,
                   "teacher").status_code == 200
        assert refused(get(client, auth, f"/api/analytics/{endpoint}/{theirs}", T_MATHS,
                           "teacher"))
    flagged = get(client, auth, "/api/analytics/at-risk-students?threshold=0", T_MATHS,
                  "teacher").get_json()
    assert sorted(s["user_id"] for s in flagged["students"]) == sorted(map(str, MATHS_STUDENTS))
    counts = get(client, auth, "/api/analytics/event-counts?days=7", T_MATHS,
                 "teacher").get_json()
    assert counts["total"] == 1 + 15 + 15 + 9  # their own login, the class's events
    for admin_only in ("page-views", "popular-quests", "errors", "attribution"):
        assert refused(get(client, auth, f"/api/analytics/{admin_only}", T_MATHS, "teacher"))


# --------------------------------------------------------- admin writes


def test_admins_manage_classes_over_http(client: FlaskClient, auth: Any, school: None) -> None:
    admin = auth.header(ADMIN, "admin")
    created = client.post("/api/analytics/classes", json={"name": " History 9C "},
                          headers=admin)
    assert created.status_code == 201 and created.get_json()["name"] == "History 9C"
    klass = created.get_json()["class_id"]
    member = f"/api/analytics/classes/{klass}/members/{LONER}"
    assert client.put(member, json={"member_role": "student"}, headers=admin).status_code == 201
    again = client.put(member, json={"member_role": "student"}, headers=admin)
    assert again.status_code == 200 and again.get_json()["added"] is False
    teacher = f"/api/analytics/classes/{klass}/members/{T_ART}"
    assert client.put(teacher, json={"member_role": "teacher"}, headers=admin).status_code == 201
    listed = client.get(f"/api/analytics/classes/{klass}/members", headers=admin).get_json()
    assert [(m["user_id"], m["member_role"]) for m in listed["members"]] == [
        (str(T_ART), "teacher"), (str(LONER), "student")]
    with freeze_time(NOW):
        art_teacher = client.get("/api/analytics/students",
                                 headers=auth.header(T_ART, "teacher")).get_json()
    assert str(LONER) in ids(art_teacher)  # at once
    assert client.delete(member, headers=admin).get_json()["removed"] == ["student"]
    assert client.delete(member, headers=admin).status_code == 404
    renamed = client.patch(f"/api/analytics/classes/{klass}", json={"name": "History 9D"},
                           headers=admin)
    assert renamed.get_json()["name"] == "History 9D"
    assert client.delete(f"/api/analytics/classes/{klass}", headers=admin).status_code == 204
    assert client.delete(f"/api/analytics/classes/{klass}", headers=admin).status_code == 404


def test_class_writes_are_admin_only_and_checked(client: FlaskClient, auth: Any,
                                                 school: None) -> None:
    for user, role in ((T_MATHS, "teacher"), (PARENT, "parent"), (LONER, "student")):
        headers = auth.header(user, role)
        assert refused(client.post("/api/analytics/classes", json={"name": "x"},
                                   headers=headers))
        assert refused(client.put(f"/api/analytics/classes/{MATHS}/members/{user}",
                                  json={"member_role": "teacher"}, headers=headers))
        assert refused(client.delete(f"/api/analytics/classes/{MATHS}", headers=headers))
    admin = auth.header(ADMIN, "admin")
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": 7}):
        answer = client.post("/api/analytics/classes", json=body, headers=admin)
        assert answer.status_code == 400 and set(answer.get_json()) == {"error"}, body
    bad_role = client.put(f"/api/analytics/classes/{MATHS}/members/{LONER}",
                          json={"member_role": "admin"}, headers=admin)
    assert bad_role.status_code == 400 and "member_role" in bad_role.get_json()["error"]
    missing = client.put(f"/api/analytics/classes/{uuid.uuid4()}/members/{LONER}",
                         json={"member_role": "student"}, headers=admin)
    assert missing.status_code == 404


def test_anonymize_leaves_classes_and_their_summaries_intact(
        client: FlaskClient, auth: Any, school: None, conn: psycopg.Connection[Any],
        db: Any) -> None:
    """Anonymizing events older than the window changes neither the memberships nor a class
    summary within the window; it removes the people from the old events only."""
    for student in MATHS_STUDENTS:
        add_event(conn, "login_success", NOW - timedelta(days=120), user_id=student)
    path = f"/api/analytics/classes/{MATHS}/summary?days=30"
    before = get(client, auth, path, T_MATHS, "teacher").get_json()
    memberships = conn.execute("SELECT count(*) FROM class_memberships").fetchone()
    stats = retention.anonymize(db, now=NOW, older_than_days=90, pii_keys=("email",))
    assert sum(stats.rows.values()) >= len(MATHS_STUDENTS)
    assert conn.execute("SELECT count(*) FROM user_activity_events WHERE occurred_at < %s AND "
                        "user_id IS NOT NULL", (NOW - timedelta(days=90),)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM class_memberships").fetchone() == memberships
    assert get(client, auth, path, T_MATHS, "teacher").get_json() == before


def test_the_summary_names_the_set_that_made_its_scores(
        client: FlaskClient, auth: Any, school: None, conn: psycopg.Connection[Any]) -> None:
    """Not the active set: the one whose parameters the class's newest stored scores were
    made with, so a roll back does not relabel scores it did not make."""
    def named() -> Any:
        return get(client, auth, f"/api/analytics/classes/{MATHS}/summary?days=7", T_MATHS,
                   "teacher").get_json()["parameter_set"]

    assert named() == {"id": None, "source": "settings", "fitted_at": None,
                       "validation_auc": None, "validation_auc_among_classmates": None}
    fitted = RiskParams.from_mapping({"expected_days_per_week": 5.0})
    set_id = parameter_sets.activate(
        conn, fitted, now=NOW, outcome="course_withdrawn", fit_at=NOW - timedelta(days=60),
        validate_at=NOW - timedelta(days=30), validated_until=NOW, validation={"auc": 0.7123})
    assert named()["source"] == "settings"  # active, but it made none of these scores yet
    store_assessments(conn, score_students(conn, now=NOW, params=fitted,
                                           history_days=HISTORY_DAYS), now=NOW,
                      params=fitted)
    assert named() == {"id": set_id, "source": "risk-calibrate",
                       "fitted_at": NOW.isoformat(), "validation_auc": 0.7123,
                       "validation_auc_among_classmates": None}
    assert parameter_sets.roll_back(conn, now=NOW) == (set_id, None)
    assert named()["id"] == set_id  # rolled back, but still what made today's scores
    # One student rescored with the settings: the set still made most of the class's scores.
    store_assessments(conn, score_students(conn, now=NOW, user_ids=MATHS_STUDENTS[:1],
                                           history_days=HISTORY_DAYS),
                      now=NOW)
    assert named()["id"] == set_id
    # Two sets hold these parameters: the active one names them, not a newer retired one.
    again = dict(outcome="course_withdrawn", fit_at=NOW - timedelta(days=60),
                 validate_at=NOW - timedelta(days=30), validated_until=NOW,
                 validation={"auc": 0.7})
    first = parameter_sets.activate(conn, fitted, now=NOW, **again)
    second = parameter_sets.activate(conn, fitted, now=NOW, **again)
    assert parameter_sets.roll_back(conn, now=NOW) == (second, first)
    assert named()["id"] == first
    assert parameter_sets.label_of_scores(conn, []) is None
