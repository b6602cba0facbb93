"""Development mode tells the developer why curl's events are not stored; production never does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import TEST_JWT_SECRET, _scratch_database
from ingestion_support import BROWSER

from backend import create_app
from backend.config import Settings

TRACK = "/api/analytics/activity/track"
CURL = {"User-Agent": "curl/8.5.0"}


@pytest.fixture(scope="module")
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    yield from _scratch_database(pg_server_url, template=template_db)


def _post(database_url: str, dev_mode: bool, headers: dict[str, str]) -> dict[str, str]:
    app = create_app({"TESTING": True, "WAYMARK_DATABASE_URL": database_url,
                      "WAYMARK_JWT_SECRET": TEST_JWT_SECRET, "WAYMARK_DEV_MODE": dev_mode,
                      "WAYMARK_ACK": "queued"})
    try:
        response = app.test_client().post(TRACK, json={"event_type": "page_view"},
                                          headers=headers)
        assert response.status_code == 202
        return dict(response.headers)
    finally:
        app.extensions["waymark"].close()


def test_development_mode_names_the_crawler_drop(database_url: str) -> None:
    headers = _post(database_url, True, CURL)
    assert headers["X-Waymark-Dropped"].startswith("crawler (")


def test_a_browser_event_carries_no_drop_header(database_url: str) -> None:
    assert "X-Waymark-Dropped" not in _post(database_url, True, BROWSER)


def test_production_never_tells_a_bot_it_was_detected(database_url: str) -> None:
    assert "X-Waymark-Dropped" not in _post(database_url, False, CURL)


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), (None, False)])
def test_dev_mode_setting(value: str | None, expected: bool) -> None:
    environ = {"WAYMARK_DEV_MODE": value} if value is not None else {}
    assert Settings.load({}, environ).dev_mode is expected
