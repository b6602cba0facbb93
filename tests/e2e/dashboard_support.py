"""What the dashboard's browser tests share: Chromium, the served app, a ready view, and the
checks every view passes (screenshot, no overflow, no console error, axe-core)."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from flask import Flask
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WAYMARK_E2E_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
SHOTS = Path(os.environ.get("WAYMARK_E2E_SCREENSHOTS", ROOT / "e2e-screenshots"))
WIDTHS = (1440, 390)
AXE_BLOCKING = ("serious", "critical")


class Site(Protocol):
    """A served app: where its pages are."""

    base: str


def skip_without_a_browser() -> None:
    """Skip (with the command that fixes it) where Chromium or the test packages are missing."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} not found: run `make e2e-deps`")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python (axe-core) missing")


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served on a free port of 127.0.0.1 (threaded, like gunicorn's threads); its
    base URL. Waymark is closed afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        app.extensions["waymark"].close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright  # optional: skip_without_a_browser() first

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _axe_source() -> str:
    import axe_playwright_python  # optional: skip_without_a_browser() first

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


@dataclass
class Visit:
    page: Any
    console_errors: list[str]
    responses: list[tuple[str, int]]


def open_view(browser: Any, demo: Site, token: str, width: int, view: str = "") -> Visit:
    """The dashboard with the token passed in the fragment (as a host app would), ready."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    visit = Visit(page, [], [])
    page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.console_errors.append(str(e)))
    page.on("response", lambda r: visit.responses.append((r.url, r.status)))
    fragment = f"#token={token}" + (f"&view={view}" if view else "")
    page.goto(f"{demo.base}/dashboard{fragment}")
    page.wait_for_selector("body[data-ready=true]", state="attached", timeout=30000)
    assert token not in page.url, "the token must leave the address bar at once"
    return visit


def check_page(visit: Visit, name: str, width: int) -> None:
    """Screenshot, no overflow, no console error, axe-core: no serious/critical violation."""
    page = visit.page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} at {width}px overflows sideways by {overflow}px"
    page.evaluate(_axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    blocking = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"] if v["impact"] in AXE_BLOCKING]
    assert not blocking, f"{name} at {width}px: axe-core violations {json.dumps(blocking)}"
    assert not visit.console_errors, f"{name} at {width}px: console errors {visit.console_errors}"


def charts(page: Any) -> dict[str, Any]:
    """What the page gave Chart.js, by chart name."""
    return page.evaluate("window.waymarkCharts")  # type: ignore[no-any-return]


def api(demo: Site, token: str, path: str) -> Any:
    # Our own server on 127.0.0.1 (http): no other scheme can reach this call.
    request = urllib.request.Request(f"{demo.base}/api/analytics{path}",  # noqa: S310
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:  # noqa: S310
        return json.loads(response.read())
