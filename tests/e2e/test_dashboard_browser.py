"""End to end: the dashboard page in Debian's headless Chromium against the real app.

An admin's token shows the at-risk table with each student's factors; a student's
token shows only their own panels. The page reads everything through the API, so
what it shows is what the token checks and RLS allow.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("WAYMARK_E2E_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
DRIFTING = uuid.UUID("d0000000-0000-4000-8000-00000000000d")
REGULAR = uuid.UUID("e0000000-0000-4000-8000-00000000000e")


@pytest.fixture
def served(app: Flask, conn: psycopg.Connection[Any]) -> Iterator[str]:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} not found: run `make e2e-deps`")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        # The regular student logs in every day; the drifting one stopped 40 days ago.
        for day in range(60):
            cur.execute("INSERT INTO user_activity_events (occurred_at, user_id, event_type,"
                        " event_category) VALUES (%s, %s, 'login_success', 'auth')",
                        (now - timedelta(days=day), REGULAR))
        cur.execute("INSERT INTO user_activity_events (occurred_at, user_id, event_type,"
                    " event_category) VALUES (%s, %s, 'login_success', 'auth')",
                    (now - timedelta(days=40), DRIFTING))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def open_dashboard(base: str, token: str) -> tuple[str, str]:
    """The text of the at-risk panel (if any) and of the whole page, after loading."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/dashboard")
            page.fill("#token", token)
            page.click("#load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('main section div[id]')]"
                ".every((d) => !d.textContent.includes('loading'))", timeout=15000)
            return page.inner_text("main"), page.inner_text("header")
        finally:
            browser.close()


def test_admin_sees_students_at_risk_with_their_factors(served: str, auth: Any) -> None:
    main, header = open_dashboard(served, auth.token(uuid.uuid4(), "admin"))
    assert "admin" in header
    assert "Students at risk" in main
    assert str(DRIFTING)[:8] in main          # the drifting student is listed …
    assert str(REGULAR)[:8] not in main.split("Activity by category")[0]  # … the regular one is not
    assert "inactivity" in main and "at_risk" in main


def test_student_sees_only_their_own_panels(served: str, auth: Any) -> None:
    main, header = open_dashboard(served, auth.token(REGULAR))
    assert "student" in header
    assert "My engagement" in main and "My learning journey" in main
    assert "Students at risk" not in main
    assert str(DRIFTING)[:8] not in main
