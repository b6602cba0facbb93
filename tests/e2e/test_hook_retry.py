"""The hook keeps what it was told to retry: a real 503 from the real server, in Chromium.

The app runs in the JetStream mode with its NATS server not started yet, so the hook's
first batches are answered 503 + ``Retry-After``. Then the NATS server starts; the hook
resends on its own, gets 202, and a writer stores them: every event id once answered 503
is in the table exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask, request
from flask import Response as FlaskResponse
from nats_support import Node, RunningWriter
from pg_cluster import free_port
from test_browser_tracking import (  # the same browser, page and server as the hook's e2e test
    CHROMIUM,
    CHROMIUM_ARGS,
    USER_AGENT,
    demo_server,
)

from backend.state import get_state

__all__ = ["demo_server"]  # a fixture this module uses

WAIT_SECONDS = 30.0


@pytest.fixture
def nats_port() -> int:
    return free_port()


@pytest.fixture
def app_config(app_config: dict[str, Any], nats_port: int) -> dict[str, Any]:
    return {**app_config, "WAYMARK_QUEUE_URL": f"nats://127.0.0.1:{nats_port}",
            "WAYMARK_STREAM_NAME": "HOOKRETRY"}


@pytest.fixture
def late_nats(nats_port: int, tmp_path: Path) -> Iterator[Node]:
    node = Node("wm-late", nats_port, free_port(), tmp_path / "nats", tmp_path / "nats.log")
    yield node
    node.kill()


def _until(done: Any, seconds: float = WAIT_SECONDS, why: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in time: {why}")
        time.sleep(0.2)


def test_the_hook_resends_what_was_answered_503_and_it_is_stored(
        app: Flask, demo_server: str, db_url: str, late_nats: Node) -> None:
    from playwright.sync_api import sync_playwright

    refused: set[str] = set()
    accepted: set[str] = set()
    answers: list[int] = []

    # what the server answered each batch (keepalive fetches are not all reported to the
    # browser's response events): the body is read once and kept for this hook
    @app.before_request
    def keep_body() -> None:
        request.get_data(cache=True)

    @app.after_request
    def record(response: FlaskResponse) -> FlaskResponse:
        if request.method == "POST" and request.path.endswith("/activity/batch"):
            body = json.loads(request.get_data() or b"{}")
            ids = {e["event_id"] for e in body.get("events", [])}
            answers.append(response.status_code)
            (accepted if response.status_code == 202 else refused
             if response.status_code == 503 else set()).update(ids)
        return response

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(user_agent=USER_AGENT)
            page.goto(f"{demo_server}/demo/home")
            page.wait_for_selector("text=Home")
            page.click("#link-quests")
            page.wait_for_selector("text=Quest board")
            page.click("#custom")
            _until(lambda: bool(refused), why=answers)  # the stream is not there: 503
            assert not accepted, answers
            late_nats.start()  # NATS comes back; the hook resends on its own
            _until(lambda: refused <= accepted, why=answers)
        finally:
            browser.close()

    with RunningWriter(db_url, get_state(app).settings):
        def stored() -> dict[str, int]:
            with psycopg.connect(db_url) as conn:
                rows = conn.execute(
                    "SELECT event_id::text, count(*) FROM user_activity_events "
                    "WHERE event_id = ANY(%s::uuid[]) GROUP BY 1", (list(refused),)).fetchall()
            return {event_id: n for event_id, n in rows}
        _until(lambda: set(stored()) == refused)
    assert set(stored().values()) == {1}, stored()
    print(f"hook retry: {len(refused)} events answered 503, all resent and stored once")
