"""The event taxonomy (docs/analytics.md): known types map to their category, others to custom."""

from __future__ import annotations

import pytest

from backend.taxonomy import CATEGORIES, EVENT_TYPE_PATTERN, category_of


@pytest.mark.parametrize("event_type, category", [
    ("page_view", "navigation"), ("quest_completed", "quest"), ("quest_assigned", "quest"),
    ("badge_earned", "badge"), ("tutor_safety_flag", "tutor"), ("profile_viewed", "community"),
    ("login_failed", "auth"), ("parent_evidence_uploaded", "parent"),
    ("network_error", "error"), ("landing_visit", "acquisition"), ("my_custom_thing", "custom"),
])
def test_category_of(event_type: str, category: str) -> None:
    assert category_of(event_type) == category
    assert category in CATEGORIES


@pytest.mark.parametrize("event_type, ok", [
    ("page_view", True), ("a", True), ("a" * 64, True), ("a" * 65, False),
    ("Page_view", False), ("1abc", False), ("page-view", False), ("", False),
    ("page_view\n", False),
])
def test_event_type_pattern(event_type: str, ok: bool) -> None:
    assert bool(EVENT_TYPE_PATTERN.match(event_type)) is ok
