"""The dashboard a newcomer sees first: a fresh install (`make run`: a migrated database with
nothing in it) opened with an admin's token, in Debian's headless Chromium.

Every card says in words what it is waiting for — no card left loading, none failing, no
"undefined" or "NaN" — the page passes the checks every view passes (screenshot, no
overflow, no console error, axe-core), and the first events are counted the way a person
writes a count: "1 event", then "2 events".
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dashboard_support import (
    WIDTHS,
    check_page,
    chromium,
    open_view,
    serving,
    skip_without_a_browser,
)

from backend import create_app
from tests.conftest import TEST_JWT_SECRET, AuthTokens, _scratch_database

CHROME_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/120.0 Safari/537.36")


@dataclass
class FreshInstall:
    base: str
    db_url: str


@pytest.fixture(scope="module")
def fresh(pg_server_url: str, template_db: str) -> Iterator[FreshInstall]:
    skip_without_a_browser()
    for db_url in _scratch_database(pg_server_url, template_db):
        app = create_app({"WAYMARK_DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": TEST_JWT_SECRET})
        with serving(app) as base:
            yield FreshInstall(base, db_url)


@pytest.fixture(scope="module")
def browser(fresh: FreshInstall) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _track(site: FreshInstall, event_type: str) -> None:
    """One event as a browser sends it (202 means stored: WAYMARK_ACK=commit)."""
    # Our own server on 127.0.0.1 (http): no other scheme can reach this call.
    request = urllib.request.Request(  # noqa: S310
        f"{site.base}/api/analytics/activity/track", method="POST",
        data=json.dumps({"event_type": event_type, "page_path": "/"}).encode(),
        headers={"Content-Type": "application/json", "User-Agent": CHROME_UA})
    with urllib.request.urlopen(request) as response:  # noqa: S310
        assert response.status == 202


def test_a_fresh_install_says_what_each_card_waits_for(browser: Any,
                                                       fresh: FreshInstall) -> None:
    token = AuthTokens().token(uuid.uuid4(), "admin")
    for width in WIDTHS:
        visit = open_view(browser, fresh, token, width)
        page = visit.page
        titles = page.eval_on_selector_all("main section.card", "s => s.map(e => e.ariaLabel)")
        assert {"Activity over time", "Top pages", "Errors", "Students at risk"} <= set(titles)
        for title in titles:
            card = page.locator(f"main section.card[aria-label='{title}']")
            states = card.locator("p.state").all_inner_texts()
            assert states, f"{title}: no sentence says the card is empty"
            assert card.locator(".error").count() == 0, f"{title}: {states}"
            assert not any(s.startswith("Loading") for s in states), f"{title}: {states}"
        text = page.inner_text("body")
        for word in ("undefined", "NaN", "null", "[object"):
            assert word not in text, f"{word!r} on the page at {width}px"
        assert page.inner_text("#live") == "0 events in the last 5 minutes"
        check_page(visit, "admin-fresh-install", width)
        page.close()


def test_the_live_counter_counts_as_a_person_writes(browser: Any, fresh: FreshInstall) -> None:
    token = AuthTokens().token(uuid.uuid4(), "admin")
    for count, expected in ((1, "1 event in the last 5 minutes"),
                            (2, "2 events in the last 5 minutes")):
        _track(fresh, "page_view")
        visit = open_view(browser, fresh, token, 1440)
        visit.page.wait_for_selector("#live-count")
        assert visit.page.inner_text("#live") == expected, count
        visit.page.close()
