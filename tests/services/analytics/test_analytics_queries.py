"""The analytics SQL: every statement loads, and each core definition is written once.

A session, streak islands and "who is a student" are each one named statement of
queries.sql, included by every query that needs it; these tests fail if a copy creeps back.
"""

from __future__ import annotations

from importlib import resources

from backend.services.analytics import QUERIES
from backend.services.analytics.risk import DEFAULT_PARAMS
from backend.taxonomy import SESSION_GAP

TEXT = resources.files("backend.services.analytics").joinpath("queries.sql").read_text()


def test_each_core_definition_is_written_once_and_included_where_used() -> None:
    users = {
        "session_start": ("risk_inputs", "risk_inputs_given", "engagement", "journey"),
        "session_seconds": ("risk_inputs", "risk_inputs_given", "engagement", "journey"),
        "streak_runs": ("risk_inputs", "user_streaks", "streak_milestones"),
        "streaks": ("risk_inputs", "risk_inputs_given", "user_streaks"),
        "students": ("risk_inputs", "risk_inputs_given", "student_ids", "students_page"),
        "on_course": ("risk_inputs", "risk_inputs_given", "student_ids"),
        "has_left": ("risk_inputs", "risk_inputs_given", "student_ids", "engagement"),
        "is_activity": ("risk_inputs", "risk_inputs_given", "student_ids", "engagement",
                        "journey", "user_streaks", "students_page", "class_daily",
                        "activity_daily", "activity_period", "live_events"),
    }
    for name, queries in users.items():
        body = QUERIES[name]
        for query in queries:
            assert body in QUERIES[query], f"{query} does not include {name}"
    assert TEXT.count("guardian_links g WHERE g.parent_id") == 1  # who is a student
    assert TEXT.count("row_number() OVER (PARTITION BY user_id ORDER BY day)") == 1  # islands
    assert TEXT.count("occurred_at - prev_at >") == 1  # the session gap rule
    assert TEXT.count("ALL (%(passive)s") == 1  # what counts as activity
    assert "{{" not in "".join(QUERIES.values())


def test_the_session_gap_is_the_stored_sessions_gap() -> None:
    assert DEFAULT_PARAMS.session_gap == SESSION_GAP
