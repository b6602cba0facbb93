"""A person's history is read back to the anonymization age and no further (issue 18).

Older events are anonymized — they belong to no one — so the bound changes no answer of a
deployment that runs `waymark anonymize`; and it lets PostgreSQL leave the events' older
week partitions out of the plan, which is what keeps per-student answers fast with two
years of partitions (docs/analytics.md, "How far back")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from analytics_support import HISTORY_DAYS, add_event

from backend.services.analytics import QUERIES, milestones, risk
from backend.services.analytics.journey import journey, known
from backend.services.analytics.streaks import streaks
from backend.services.analytics.window import history_since
from backend.taxonomy import NON_ACTIVITY_TYPES

NOW = datetime.now(UTC).replace(microsecond=0)


def _two_periods(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """A student active 100 and 10 days ago, and one seen only 100 days ago."""
    both, old_only = uuid.uuid4(), uuid.uuid4()
    for days_ago in (100, 10):
        add_event(conn, "quest_completed", NOW - timedelta(days=days_ago), user_id=both,
                  data={"quest_id": f"q{days_ago}", "pillar": "stem", "xp": 10})
    add_event(conn, "page_view", NOW - timedelta(days=100), user_id=old_only)
    conn.commit()
    return both, old_only


def test_answers_about_a_person_read_back_to_the_history_bound(
        conn: psycopg.Connection[Any]) -> None:
    both, old_only = _two_periods(conn)
    assert HISTORY_DAYS == 90
    answer = journey(conn, both, now=NOW, history_days=HISTORY_DAYS)
    assert answer["total_quests_completed"] == 1 and answer["xp_by_pillar"] == {"stem": 10}
    assert answer["first_quest_date"] == (NOW - timedelta(days=10)).date().isoformat()
    assert streaks(conn, both, now=NOW, history_days=HISTORY_DAYS)["active_days_total"] == 1
    longer = journey(conn, both, now=NOW, history_days=120)
    assert longer["total_quests_completed"] == 2 and longer["xp_by_pillar"] == {"stem": 20}
    assert not known(conn, old_only, since=history_since(NOW, 90))
    assert known(conn, old_only, since=history_since(NOW, 120))


def test_a_student_is_someone_with_an_event_in_their_history(
        conn: psycopg.Connection[Any]) -> None:
    both, old_only = _two_periods(conn)
    assert milestones.student_ids(conn, now=NOW, history_days=HISTORY_DAYS) == [both]
    assert set(milestones.student_ids(conn, now=NOW, history_days=120)) == {both, old_only}
    scored = {a.user_id for a in risk.score_students(conn, now=NOW, history_days=HISTORY_DAYS)}
    assert scored == {both}


def _partitions_planned(conn: psycopg.Connection[Any], query: str,
                        params: dict[str, Any]) -> set[str]:
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert plan is not None
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if str(node.get("Relation Name", "")).startswith("user_activity_events_p"):
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0][0]["Plan"])
    return found


def test_two_years_of_week_partitions_are_left_out_of_a_per_student_plan(
        conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT waymark.ensure_event_partitions(%s, %s)",
                 ((NOW - timedelta(days=730)).date(), NOW.date()))
    conn.commit()
    weeks = conn.execute("SELECT count(*) FROM waymark.event_partitions "
                         "WHERE to_at > %s", (NOW - timedelta(days=730),)).fetchone()
    assert weeks is not None and weeks[0] >= 104
    params = {"user_id": uuid.uuid4(), "now": NOW, "today": NOW.date(),
              "history_since": history_since(NOW, 90), "passive": list(NON_ACTIVITY_TYPES)}
    planned = _partitions_planned(conn, QUERIES["user_streaks"], params)
    # the weeks touching (now - 90 days, now]: 13 or 14, never the other ~90
    assert 13 <= len(planned) <= 15, sorted(planned)
    unbounded = _partitions_planned(conn, QUERIES["user_streaks"],
                                    {**params, "history_since": NOW - timedelta(days=3650)})
    assert len(unbounded) >= 104
