"""What the tracking middleware costs a host request: a bare route vs the same route with Waymark.

Two Flask apps with the same view, one with ``Waymark(app)`` installed (database reachable,
the writer really writing in the background). Requests are driven through each app's WSGI
callable in-process, alternating between the two apps so both see the same machine noise;
p50/p99 of each and the difference are printed.

``python -m bench.middleware_overhead [--requests 20000]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from werkzeug.test import EnvironBuilder

from backend import Waymark
from bench.common import figure, fresh_database, percentile

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


def host(with_waymark: bool, url: str) -> Flask:
    """The host app: one small JSON route, like a typical API view."""
    app = Flask("host")

    @app.get("/quests/<quest_id>")
    def quest(quest_id: str) -> dict[str, str]:
        return {"quest": quest_id}

    if with_waymark:
        app.config.update(WAYMARK_DATABASE_URL=url, WAYMARK_JWT_SECRET="b" * 40)
        Waymark(app, url_rules={"GET /quests/<quest_id>": "quest_viewed"})
    return app


def caller(app: Flask) -> Callable[[], None]:
    """One request through the WSGI callable, body consumed (what a server would do)."""
    environ = EnvironBuilder(path="/quests/q7", headers={"User-Agent": UA}).get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def call() -> None:
        body = app.wsgi_app(dict(environ), start_response)  # type: ignore[arg-type]
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    return call


def main(argv: list[str]) -> None:
    """Print p50/p99 for the bare and the tracked app and the overhead, measured interleaved."""
    parser = argparse.ArgumentParser(prog="python -m bench.middleware_overhead")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--writer-paused", action="store_true",
                        help="queue the events but do not write them: the hooks' own cost, "
                             "without the writer thread competing for the GIL")
    args = parser.parse_args(argv)
    with fresh_database("wm_bench_middleware") as url:
        bare, tracked = host(False, url), host(True, url)
        if args.writer_paused:
            writer = tracked.extensions["waymark"].parts["writer"]
            writer.autostart = False
            writer._queue.maxsize = 10 * args.requests  # noqa: SLF001 - room for every event
        calls = {"bare": caller(bare), "waymark": caller(tracked)}
        samples: dict[str, list[float]] = {"bare": [], "waymark": []}
        for _ in range(500):  # warm up both (and the writer's caches and connection)
            calls["bare"]()
            calls["waymark"]()
        for i in range(args.requests):
            order = ("bare", "waymark") if i % 2 == 0 else ("waymark", "bare")
            for name in order:
                started = time.perf_counter()
                calls[name]()
                samples[name].append((time.perf_counter() - started) * 1000)
        writer = tracked.extensions["waymark"].parts["writer"]
        writer.start()
        left = writer.flush(120)
        stats = writer.stats()
        tracked.extensions["waymark"].close()
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
    figure("requests per app", args.requests)
    for pct in (50, 99):
        bare_ms = percentile(samples["bare"], pct)
        tracked_ms = percentile(samples["waymark"], pct)
        figure(f"bare route p{pct}", bare_ms, "ms")
        figure(f"with Waymark p{pct}", tracked_ms, "ms")
        figure(f"middleware overhead p{pct}", tracked_ms - bare_ms, "ms")
    figure("events recorded (stored / accepted)",
           f"{stored[0] if stored else 0:,} / {stats['accepted']:,} (unwritten {left})")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
