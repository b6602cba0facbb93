"""``track()`` and ``request_event()``: from jobs (no app context) and from requests."""

from __future__ import annotations

import uuid
import weakref
from typing import Any

import psycopg
import pytest
from flask import Flask
from ingestion_support import count, flush

from backend import create_app, get_state, request_event, track
from backend.services.ingest.validation import InvalidInput
from backend.state import WaymarkState


@pytest.fixture
def only(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """Make ``app`` the only Waymark app of this process (other tests may leave theirs open)."""
    monkeypatch.setattr(WaymarkState, "_live", [weakref.ref(get_state(app))])
    return app


def test_track_outside_any_context_uses_the_only_app(only: Flask,
                                                     conn: psycopg.Connection[Any]) -> None:
    student = uuid.uuid4()
    assert track("badge_earned", user_id=student, badge_id="b1", page_path="/badges")
    assert request_event().trigger("quest_completed", quest_id="q1", pillar="stem", xp=50)
    flush(only)
    rows = conn.execute("SELECT event_type, event_category, user_id, source, page_path, "
                        "event_data FROM user_activity_events ORDER BY event_type").fetchall()
    assert rows == [
        ("badge_earned", "badge", student, "server", "/badges", {"badge_id": "b1"}),
        ("quest_completed", "quest", None, "server", None,
         {"quest_id": "q1", "pillar": "stem", "xp": 50}),
    ]
    assert count(conn, "user_sessions", "user_id = %s", (student,)) == 1


def test_track_refuses_an_invalid_event(only: Flask) -> None:
    with pytest.raises(InvalidInput, match="event_type"):
        track("Not A Type")
    with pytest.raises(ValueError, match="event_data"):
        track("custom_thing", blob={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})


def test_with_several_apps_track_needs_an_app_context_or_app(
        only: Flask, app_config: dict[str, Any], conn: psycopg.Connection[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = create_app(app_config)
    try:
        monkeypatch.setattr(WaymarkState, "_live", [weakref.ref(get_state(only)),
                                                    weakref.ref(get_state(other))])
        assert track("logout") is False
        assert track("logout", app=other) is True
        with only.app_context():
            assert track("login_success") is True
        flush(only)
        flush(other)
        assert sorted(r[0] for r in conn.execute("SELECT event_type FROM user_activity_events")) \
            == ["login_success", "logout"]
    finally:
        other.extensions["waymark"].close()
