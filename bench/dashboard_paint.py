"""First meaningful paint of the admin dashboard, measured in headless Chromium.

``python -m bench.dashboard_paint`` loads the demo data (``waymark demo``: 150k events,
300 students) and, with ``--events 1000000``, a 1M-event set (2,000 students: one per
500 events, as ``waymark demo`` scales it) into databases of their own, starts the real
server (``waymark serve``: gunicorn) on a free loopback port, and opens
``/dashboard#token=<admin token>`` in Debian's Chromium (the e2e tests' browser) for
``--rounds`` cold page loads (a new browser context each: nothing cached).

Figures, from navigation start, read from the page's own ``performance`` marks:

* **first meaningful paint**: the admin view's headline, the activity-over-time chart,
  has been drawn with its data (``waymark:chart:activity``); the goal is ≤ 1 s on the
  demo data and ≤ 2 s on 1M events;
* every card drawn (``waymark:ready``: each answer arrived and was rendered).

Never a pass/fail: it prints p50 and max per size.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
from psycopg.conninfo import make_conninfo

from bench.common import create_database, drop_database, figure, percentile, server_url

SECRET = "waymark-bench-secret-at-least-32-bytes-long!"
CHROMIUM = os.environ.get("WAYMARK_E2E_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
WAYMARK = str(Path(sys.executable).parent / "waymark")
DEMO_EVENTS = 150_000
EVENTS_PER_STUDENT = 500
MARKS = ("waymark:chart:activity", "waymark:ready")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_token() -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
                       "iat": now, "exp": now + 3600, "app_metadata": {"role": "admin"}},
                      SECRET, algorithm="HS256")


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "WAYMARK_JWT_SECRET": SECRET}


def _has_events(url: str, events: int) -> bool:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0] >= events)


def prepare(server: str, events: int, reuse: bool) -> str:
    """A database holding ``events`` demo events, rolled up and scored (``waymark demo``)."""
    name = f"wm_bench_paint_{events}"
    url = make_conninfo(server, dbname=name)
    if reuse and _has_events(url, events):
        return url
    url = create_database(server, name)
    students = max(20, events // EVENTS_PER_STUDENT)
    started = time.monotonic()
    subprocess.run([WAYMARK, "demo", "--events", str(events), "--students", str(students)],
                   env=_env(url), check=True, capture_output=True)
    figure(f"waymark demo, {events:,} events", time.monotonic() - started, "s")
    return url


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """``waymark serve`` on a free port, once its health answers."""
    port = _free_port()
    process = subprocess.Popen([WAYMARK, "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=_env(url), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("waymark serve did not start in 60 s")


def measure(base: str, rounds: int) -> dict[str, list[float]]:
    """Milliseconds from navigation start to each mark, one cold load per round."""
    from playwright.sync_api import sync_playwright

    token = _admin_token()
    samples: dict[str, list[float]] = {mark: [] for mark in MARKS}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for round_no in range(rounds + 1):  # the first load warms the server's pool
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/dashboard#token={token}")
                page.wait_for_selector("body[data-ready=true]", state="attached", timeout=60000)
                marks: dict[str, Any] = page.evaluate(
                    "Object.fromEntries(performance.getEntriesByType('mark')"
                    ".map((m) => [m.name, m.startTime]))")
                context.close()
                if round_no == 0:
                    continue
                for mark in MARKS:
                    samples[mark].append(float(marks[mark]))
        finally:
            browser.close()
    return samples


def run(server: str, events: int, rounds: int, reuse: bool) -> None:
    print(f"-- {events:,} events", flush=True)
    url = prepare(server, events, reuse)
    process, base = serve(url)
    try:
        samples = measure(base, rounds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    paint, ready = samples["waymark:chart:activity"], samples["waymark:ready"]
    figure("first meaningful paint (activity chart) p50", percentile(paint, 50), "ms")
    figure("first meaningful paint max", max(paint), "ms")
    figure("every card drawn p50", percentile(ready, 50), "ms")
    figure("every card drawn max", max(ready), "ms")
    if not reuse:
        drop_database(server, f"wm_bench_paint_{events}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_paint", description=__doc__)
    parser.add_argument("--events", type=int, action="append",
                        help=f"event counts to measure (repeatable; default {DEMO_EVENTS:,} "
                             "and 1,000,000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the databases and reuse one that already holds the events")
    args = parser.parse_args(argv)
    server = server_url()
    for events in args.events or [DEMO_EVENTS, 1_000_000]:
        run(server, events, args.rounds, args.reuse)


if __name__ == "__main__":
    main(sys.argv[1:])
